"""lrc.Stats and lrc.solve: the statistics are the C++ accumulator's, the solution is the CLI's
(`lrc solve`) bit for bit, and the paper's ordering of objectives holds."""
import math

import numpy as np
import pytest

import lrc
from conftest import REPO, read_safetensors, run_cli, write_safetensors


def problem(seed=0, d_out=96, d_in=128, n=1024):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((d_out, d_in)).astype(np.float32) / math.sqrt(d_in)
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    x[:, [3, 77]] *= 20  # outlier channels, as un-rotated LLM activations have
    return w, x


def test_version_is_the_projects():
    text = (REPO / "CMakeLists.txt").read_text()
    assert f"project(lrc VERSION {lrc.__version__} " in text


def test_stats_are_the_sums_of_x_and_q_a_of_x():
    _, x = problem(n=700)
    s = lrc.Stats(x.shape[1], abits=4, a_clip=0.9)
    s.add(x[:300]).add(x[300:])  # batches add up
    assert s.n == 700
    xx, yy, xy = s.arrays()
    y = lrc.quantize_activations(x, 4, 0.9)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(xx, x64.T @ x64, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(yy, y64.T @ y64, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(xy, x64.T @ y64, rtol=1e-12, atol=1e-9)
    # Q_a: per token, 16 levels symmetric: at most 2^(b-1) distinct magnitudes a row.
    assert len(np.unique(np.abs(y[0]))) <= 9
    assert not np.array_equal(y, x)


def test_quantize_activations_off_is_identity():
    _, x = problem(n=10)
    assert np.array_equal(lrc.quantize_activations(x, 16, 1.0), x)


@pytest.mark.parametrize("method", ["rtn", "gptq", "svd", "lrc"])
def test_solve_equals_the_cli_bit_for_bit(tmp_path, method):
    w, x = problem(seed=1)
    write_safetensors(tmp_path / "p.safetensors", {"W": w, "X": x})
    run_cli("solve", "--in", tmp_path / "p.safetensors", "--out", tmp_path / "r.safetensors",
            "--method", method, "--rank", "0.1", "--abits", "4", "--a-clip", "0.9")
    cli, meta = read_safetensors(tmp_path / "r.safetensors")

    stats = lrc.Stats(w.shape[1], abits=4, a_clip=0.9).add(x)
    for got, want in zip(stats.arrays(), (cli["xx"], cli["yy"], cli["xy"])):
        assert np.array_equal(got, want), "statistics differ from the CLI's"
    sol = lrc.solve(w, stats, method=method, rank=0.1)
    assert sol.method == method and str(sol.rank) == meta["rank"]
    for name in ("codes", "scales", "zeros", "u", "v", "w_hat"):
        got, want = getattr(sol, name), cli[name]
        assert got.shape == want.shape, name
        assert got.tobytes() == want.tobytes(), f"{name} differs from the CLI's"
    assert sol.objective == cli["objective"][0]
    assert sol.objective_fp == cli["objective_fp"][0]


def test_solve_from_given_statistics_equals_the_cli(tmp_path):
    w, x = problem(seed=2)
    stats = lrc.Stats(w.shape[1]).add(x)
    xx, yy, xy = stats.arrays()
    write_safetensors(tmp_path / "p.safetensors", {"W": w, "xx": xx, "yy": yy, "xy": xy},
                      {"n": str(stats.n)})
    run_cli("solve", "--in", tmp_path / "p.safetensors", "--out", tmp_path / "r.safetensors",
            "--method", "lrc", "--rank", "6", "--iters", "2")
    cli, _ = read_safetensors(tmp_path / "r.safetensors")
    sol = lrc.solve(w, lrc.Stats.from_arrays(xx, yy, xy, stats.n), method="lrc", rank=6, iters=2)
    assert sol.rank == 6
    assert sol.u.tobytes() == cli["u"].tobytes() and sol.codes.tobytes() == cli["codes"].tobytes()
    assert sol.objective == cli["objective"][0]


def test_lrc_beats_svd_beats_gptq_and_the_arrays_are_consistent():
    w, x = problem(seed=3)
    stats = lrc.Stats(w.shape[1]).add(x)
    gptq = lrc.solve(w, stats, method="gptq")
    svd = lrc.solve(w, stats, method="svd", rank=0.1)
    lrc10 = lrc.solve(w, stats, method="lrc", rank=0.1)
    assert gptq.rank == 0 and gptq.u.shape == (96, 0)
    assert lrc10.rank == math.floor(0.1 * 96 * 128 / (96 + 128)) == 5
    assert 0 < lrc10.objective < svd.objective < gptq.objective
    assert 0 < lrc10.relative_error < 1
    # Ŵ = scale · (code − zero); 4-bit codes; fp16 scales.
    assert lrc10.codes.max() <= 15 and lrc10.codes.dtype == np.uint8
    np.testing.assert_array_equal(
        lrc10.w_hat, (lrc10.codes.astype(np.float32) - lrc10.zeros) * lrc10.scales)
    assert np.array_equal(lrc10.scales, lrc10.scales.astype(np.float16).astype(np.float32))
    # eq. 2 from the statistics = the error of the quantized linear on the data itself.
    err = float(np.sum((x.astype(np.float64) @ w.T - lrc10(x).astype(np.float64)) ** 2))
    assert err == pytest.approx(lrc10.objective, rel=1e-3)


def test_torch_like_inputs_and_float64_are_accepted():
    w, x = problem(seed=4, n=256)
    a = lrc.Stats(w.shape[1]).add(x)
    b = lrc.Stats(w.shape[1]).add(x.astype(np.float64))  # converted to float32
    c = lrc.Stats(w.shape[1]).add(np.asfortranarray(x))   # made contiguous
    for s in (b, c):
        assert all(np.array_equal(p, q) for p, q in zip(a.arrays(), s.arrays()))


def test_bad_input_is_one_clear_error():
    w, x = problem(n=64)
    s = lrc.Stats(w.shape[1])
    with pytest.raises(lrc.Error, match="expected d_in = 128"):
        s.add(x[:, :100])
    bad = x.copy()
    bad[5, 7] = np.nan
    with pytest.raises(lrc.Error, match="(?i)finite|nan"):
        s.add(bad)
    s.add(x)
    with pytest.raises(lrc.Error, match="unknown option 'rnak'"):
        lrc.solve(w, s, rnak=3)
    with pytest.raises(lrc.Error, match="option 'iters' takes a number"):
        lrc.solve(w, s, iters="two")
    with pytest.raises(lrc.Error, match="unknown method 'lcr'"):
        lrc.solve(w, s, method="lcr")
    with pytest.raises(lrc.Error, match="a_clip belongs to the statistics"):
        lrc.solve(w, s, a_clip=0.8)
    with pytest.raises(lrc.Error, match="statistics are of d_in = 128"):
        lrc.solve(w[:, :64], s)
    with pytest.raises(lrc.Error, match="rank"):
        lrc.solve(w, s, rank=1000)
    assert issubclass(lrc.Error, ValueError)


class TorchLike:
    """What lrc uses of a torch CPU tensor (torch is not installed here): detach(), cpu() and
    the DLPack protocol, and nothing numpy could read otherwise (no __array__)."""

    def __init__(self, a):
        self._a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def __dlpack__(self, **kw):
        return self._a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_dlpack_tensors_are_viewed_not_copied():
    w, x = problem(n=300)
    assert np.shares_memory(lrc._matrix(TorchLike(x), np.float32, "x"), x)
    a, b = lrc.Stats(x.shape[1]).add(x), lrc.Stats(x.shape[1]).add(TorchLike(x))
    for u, v in zip(a.arrays(), b.arrays()):
        assert np.array_equal(u, v)
    s1, s2 = lrc.solve(w, a, method="gptq"), lrc.solve(TorchLike(w), b, method="gptq")
    assert np.array_equal(s1.codes, s2.codes) and s1.objective == s2.objective
