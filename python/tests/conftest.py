"""Shared helpers of the Python tests: where the CLI and the shared assets are, and a minimal
safetensors reader/writer (numpy only) to hand matrices to `lrc solve`."""
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def lrc_binary() -> Path:
    b = Path(os.environ.get("LRC_BINARY", REPO / "build" / "lrc"))
    assert b.exists(), f"{b}: the lrc CLI is not built (scripts/build.sh, or set LRC_BINARY)"
    return b


def shared_dir() -> Path:
    s = Path(os.environ.get("LRC_SHARED", REPO.parent / "shared"))
    assert (s / "models" / "llama-22m-debtext").exists(), f"{s}: no shared assets (LRC_SHARED)"
    return s


def run_cli(*args, **kw):
    r = subprocess.run([str(lrc_binary()), *map(str, args)], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"lrc {' '.join(map(str, args))} failed:\n{r.stderr[-3000:]}"
    return r


_DTYPES = {"F32": np.float32, "F64": np.float64, "U8": np.uint8, "F16": np.float16}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = {np.dtype(v): k for k, v in _DTYPES.items()}[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e],
                                  dtype=_DTYPES[t["dtype"]]).reshape(t["shape"])
    return out, meta


@pytest.fixture(scope="session")
def model_dir():
    return shared_dir() / "models" / "llama-22m-debtext"


@pytest.fixture(scope="session")
def calib_file():
    return shared_dir() / "data" / "debtext-calib.txt"


@pytest.fixture(scope="session")
def valid_file():
    return shared_dir() / "data" / "debtext-valid.txt"
