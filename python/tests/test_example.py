"""The README's worked example runs and prints what it promises (LRC 10% below GPTQ)."""
import re
import subprocess
import sys

from conftest import REPO


def test_worked_example(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "examples" / "python_lrc.py"), "--out",
                        str(tmp_path / "q"), "--nsamples", "8"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    obj = {m[0]: float(m[1]) for m in
           re.findall(r"^(GPTQ|LRC 10%)\s+rank\s+\d+\s+eq\. 2 objective (\S+)", r.stdout, re.M)}
    assert set(obj) == {"GPTQ", "LRC 10%"}
    assert 0 < obj["LRC 10%"] < obj["GPTQ"]
    ppl = dict(re.findall(r"^perplexity (FP|W4A4 \+ LRC 10%): (\S+)", r.stdout, re.M))
    assert 1 < float(ppl["FP"]) < float(ppl["W4A4 + LRC 10%"])
    assert r.stdout.count("  layer ") == 6
