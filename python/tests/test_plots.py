"""The pictures of the CLI, parsed as XML: `lrc demo --plot` (rank sweep; gap-closed bars with
per-seed points) and `lrc quantize --report`. Small settings: the shapes are what is tested."""
import json
import subprocess

import pytest

import lrc
import svg_util
from conftest import lrc_binary, run_cli

FAST = ["--nsamples", "2", "--seq", "64", "--max-chunks", "1", "--jobs", "1"]


def test_demo_rank_sweep(tmp_path):
    svg = tmp_path / "sweep.svg"
    run_cli("demo", "--methods", "gptq,svd,lrc", "--ranks", "0,0.05,0.1", "--svd-ranks", "0.1",
            "--plot", svg, *FAST)
    p = svg_util.panels(svg_util.parse(svg))
    assert list(p) == ["Perplexity against rank"]
    sweep = p["Perplexity against rank"]
    assert svg_util.series(sweep) == {"LRC": 3, "SVD": 1}
    lv = svg_util.levels(sweep)
    assert set(lv) == {"QuaRot-GPTQ", "FP"} and lv["FP"] < lv["QuaRot-GPTQ"]


def test_demo_seeds_give_bars_with_a_point_per_seed(tmp_path):
    svg = tmp_path / "seeds.svg"
    run_cli("demo", "--methods", "gptq,lrc", "--ranks", "0.1", "--seeds", "0,1", "--plot", svg,
            *FAST)
    p = svg_util.panels(svg_util.parse(svg))
    [title] = p
    assert title.startswith("Gap closed")
    b = svg_util.bars(p[title])
    assert set(b) == {"gptq", "lrc 10%"}
    assert b["gptq"] == (0.0, 2)
    assert b["lrc 10%"][1] == 2
    assert svg_util.levels(p[title]) == {"FP (100%)": 1.0}


def test_plot_demo_from_python_is_the_cli_figure(tmp_path):
    """lrc.plot_demo on `lrc demo --json`'s rows, with the command line as caption, writes the
    file `lrc demo --plot` wrote, byte for byte; bad rows are one lrc.Error naming the row."""
    cli_svg = tmp_path / "cli.svg"
    args = ["demo", "--methods", "gptq,svd,lrc", "--ranks", "0,0.1", "--svd-ranks", "0,0.1",
            "--plot", cli_svg, "--json", *FAST]
    doc = json.loads(run_cli(*args).stdout)
    py_svg = tmp_path / "py.svg"
    lrc.plot_demo(doc, py_svg, caption="lrc " + " ".join(map(str, args)))
    assert py_svg.read_bytes() == cli_svg.read_bytes()
    lrc.plot_demo(doc["rows"], tmp_path / "rows.svg")  # the list alone, no caption
    assert svg_util.series(svg_util.panels(svg_util.parse(tmp_path / "rows.svg"))[
        "Perplexity against rank"]) == {"LRC": 2, "SVD": 2}
    with pytest.raises(lrc.Error, match=r"plot_demo: row 1 has no \"ppl\""):
        lrc.plot_demo([doc["rows"][0], {"method": "lrc", "rank": 0.1}], tmp_path / "bad.svg")
    assert not (tmp_path / "bad.svg").exists()


def test_demo_plot_with_nothing_to_draw_fails(tmp_path):
    r = subprocess.run([str(lrc_binary()), "demo", "--methods", "rtn", "--no-fp",
                        "--plot", str(tmp_path / "x.svg"), *FAST], capture_output=True, text=True)
    assert r.returncode != 0 and "--plot" in r.stderr and "nothing to draw" in r.stderr
    assert not (tmp_path / "x.svg").exists()


@pytest.mark.parametrize("method", ["gptq", "svd"])
def test_quantize_report_of_a_baseline(tmp_path, method, model_dir, calib_file):
    svg = tmp_path / "r.svg"
    run_cli("quantize", "--model", model_dir, "--calib", calib_file, "--out", tmp_path / "q",
            "--method", method, "--rank", "0.1", "--nsamples", "4", "--seq", "64", "--report", svg)
    p = svg_util.panels(svg_util.parse(svg))
    assert svg_util.series(p["down_proj"]) == {method: 6, "gptq": 6}
    # a rank panel only where there are ranks
    assert ("rank k" in p) == (method == "svd")
