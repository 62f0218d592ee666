"""lrc.quantize / eval_ppl / load_checkpoint on the default model (llama-22m-debtext, 6 layers),
with a small calibration set: the same checkpoint as `lrc quantize`, progress per layer, the
--report picture, and bad input as one clear error."""
import json

import numpy as np
import pytest

import lrc
import svg_util
from conftest import run_cli

SMALL = dict(nsamples=8, seq=128)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, model_dir, calib_file):
    out = tmp_path_factory.mktemp("q") / "ckpt"
    svg = out.parent / "report.svg"
    calls = []
    rep = lrc.quantize(str(model_dir), calib=str(calib_file), out=str(out), method="lrc",
                       rank=0.1, progress=lambda done, total: calls.append((done, total)),
                       report=str(svg), **SMALL)
    return out, svg, rep, calls


def test_quantize_reports_every_layer_and_linear(quantized):
    out, _, rep, calls = quantized
    assert calls == [(i, 6) for i in range(1, 7)]
    assert len(rep["linears"]) == 6 * 7
    for l in rep["linears"]:
        assert 0 < l["objective_rel"] < l["objective_gptq_rel"] < 1, l["name"]
    assert rep["options"]["method"] == "lrc" and rep["options"]["nsamples"] == 8
    assert (out / "lrc_config.json").exists() and (out / "model.safetensors").exists()


def test_quantize_equals_the_cli(quantized, tmp_path, model_dir, calib_file):
    out, _, _, _ = quantized
    run_cli("quantize", "--model", model_dir, "--calib", calib_file, "--out", tmp_path / "cli",
            "--method", "lrc", "--rank", "0.1", "--nsamples", "8", "--seq", "128")
    assert (tmp_path / "cli" / "model.safetensors").read_bytes() == \
        (out / "model.safetensors").read_bytes()


def test_report_picture(quantized):
    _, svg, rep, _ = quantized
    root = svg_util.parse(svg)
    p = svg_util.panels(root)
    kinds = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert list(p) == kinds + ["rank k", "activation clip c"]
    for k in kinds:
        assert svg_util.series(p[k]) == {"lrc": 6, "gptq": 6}
    assert svg_util.series(p["rank k"]) == {k: 6 for k in kinds}
    assert len(svg_util.series(p["activation clip c"])) == 4


def test_load_checkpoint_gives_the_arrays(quantized):
    out, _, rep, _ = quantized
    ck = lrc.load_checkpoint(str(out))
    assert ck.config["quantization"]["method"] == "lrc"
    assert ck.config["quantization"]["nsamples"] == 8
    assert len(ck.linears) == 42
    ranks = {l["name"]: l["rank"] for l in rep["linears"]}
    q = ck.linears["layers.0.self_attn.q_proj"]
    assert q.shape == (384, 384) and q.bits == 4 and q.codes.dtype == np.uint8
    assert q.rank == ranks["layers.0.self_attn.q_proj"] == 19  # floor(0.1·384·384/768)
    assert q.u.shape == (384, 19) and q.v.shape == (384, 19)
    w = q.dequantize()
    assert w.shape == (384, 384) and np.isfinite(w).all()
    assert len(np.unique(q.codes)) <= 16
    assert ck.linears["layers.5.mlp.down_proj"].shape == (384, 1024)
    assert ck.embeddings.shape == (32000, 384)


def test_eval_ppl_of_the_checkpoint_and_the_fp_model(quantized, model_dir, valid_file):
    out, _, _, _ = quantized
    fp = lrc.eval_ppl(str(model_dir), str(valid_file), seq=128, max_chunks=4)
    q = lrc.eval_ppl(str(out), str(valid_file), seq=128, max_chunks=4, kernels="sim")
    assert fp["tokens"] == q["tokens"] == 4 * 128
    assert 1 < fp["ppl"] < q["ppl"] < 2 * fp["ppl"]
    cli = json.loads(run_cli("eval", "--model", out, "--data", valid_file, "--seq", "128",
                             "--max-chunks", "4", "--kernels", "sim", "--json").stdout)
    assert cli["ppl"] == q["ppl"]


def test_a_raising_progress_callback_stops_the_run(tmp_path, model_dir, calib_file):
    class Stop(Exception):
        pass

    def progress(done, total):
        raise Stop(f"stop at {done}/{total}")

    with pytest.raises(Stop, match="stop at 1/6"):
        lrc.quantize(str(model_dir), calib=str(calib_file), out=str(tmp_path / "x"),
                     method="gptq", progress=progress, **SMALL)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_bad_input_names_the_file_or_option(tmp_path, model_dir, calib_file):
    with pytest.raises(lrc.Error, match="nope"):
        lrc.quantize(str(tmp_path / "nope"), calib=str(calib_file), out=str(tmp_path / "o"))
    with pytest.raises(lrc.Error, match="unknown option 'rnak'"):
        lrc.quantize(str(model_dir), calib=str(calib_file), out=str(tmp_path / "o"), rnak=0.1)
    with pytest.raises(lrc.Error, match="rtn gathers no statistics"):
        lrc.quantize(str(model_dir), calib=str(calib_file), out=str(tmp_path / "o"),
                     method="rtn", report=str(tmp_path / "r.svg"))
    with pytest.raises(lrc.Error, match="not_a_ckpt"):
        lrc.load_checkpoint(str(tmp_path / "not_a_ckpt"))
