"""lrc: W4A4 quantization of LLMs with low-rank correction, from Python.

The C++ core of the ``lrc`` command (Scetbon & Hensman, *Low-Rank Correction for Quantized
LLMs*) behind numpy arrays. Every linear layer becomes

    y = Ŵ·Q_a(x) + U·(Vᵀ·x)      Ŵ 4-bit, Q_a per-token 4-bit activations, U, V fp16

with Ŵ, U, V chosen to minimise the paper's eq. 2, ``‖WX − ŴQ_a(X) − UVᵀX‖²``, from float64
statistics of the layer's inputs X.

One matrix, inside your own pipeline::

    stats = lrc.Stats(d_in)                # XXᵀ, YYᵀ, XYᵀ with Y = Q_a(X), float64
    stats.add(x)                           # x: tokens x d_in (numpy, or a torch CPU tensor)
    sol = lrc.solve(W, stats, method="lrc", rank=0.1)
    sol.objective, sol.codes, sol.scales, sol.u, sol.v

A whole model (what ``lrc quantize`` does)::

    report = lrc.quantize("model_dir", calib="calib.txt", out="/tmp/q", method="lrc", rank=0.1)
    lrc.eval_ppl("/tmp/q", "valid.txt")
    ckpt = lrc.load_checkpoint("/tmp/q")

Errors in the input raise :class:`lrc.Error` (a ``ValueError``) with the C++ message, which
names the file or the option that is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import _lrc
from ._lrc import Error

__version__: str = _lrc.__version__

__all__ = [
    "Error",
    "Stats",
    "Solution",
    "solve",
    "quantize",
    "eval_ppl",
    "load_checkpoint",
    "Checkpoint",
    "CheckpointLinear",
    "quantize_activations",
    "tokenize",
    "plot_demo",
    "default_options",
    "__version__",
]


def _matrix(x: Any, dtype: Any, name: str) -> np.ndarray:
    """A C-contiguous 2-D array of `dtype`, without a copy when `x` already is one.

    numpy arrays and CPU tensors that speak DLPack (torch) are viewed, not copied, when their
    dtype and layout already fit; anything else is converted.
    """
    if not isinstance(x, np.ndarray):
        if hasattr(x, "detach"):  # a torch tensor: leave autograd, come to the CPU
            x = x.detach().cpu()
        if hasattr(x, "__dlpack__"):
            try:
                x = np.from_dlpack(x)
            except (TypeError, RuntimeError, BufferError):
                x = np.asarray(x)
    a = np.ascontiguousarray(x, dtype=dtype)
    if a.ndim != 2:
        raise Error(f"{name}: expected a 2-D array, got shape {a.shape}")
    return a


def default_options() -> Dict[str, Any]:
    """The options of :func:`quantize` and :func:`solve` and their defaults.

    The names are those of a checkpoint's ``lrc_config.json`` (``QuantizeOptions::to_json``);
    the CLI spells them with dashes (``--update-quant``) and a few differently
    (``--lrc-eps`` = ``eps_rel``, ``--w-asym`` = ``w_symmetric=False``).
    """
    return _lrc.default_options()


_ALIASES = {"lrc_eps": "eps_rel"}


def _options(opts: Dict[str, Any], where: str) -> str:
    out: Dict[str, Any] = {}
    for key, value in opts.items():
        key = _ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if key == "a_clip" and value == "search":  # as --a-clip search
            out["a_clip_search"] = True
            continue
        if key == "w_asym":
            out["w_symmetric"] = not value
            continue
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return json.dumps(out)


class Stats:
    """Streaming second-order statistics of one linear layer's input (paper Alg. 1, lines 3-5).

    Accumulates, in float64, ``XXᵀ``, ``YYᵀ`` and ``XYᵀ`` with ``Y = Q_a(X)``: the per-token
    symmetric activation quantizer the layer will run with (``abits`` bits, clip ratio
    ``a_clip``, one scale per token or per ``a_groupsize`` features). ``abits=16`` turns Q_a off.
    This is the C++ ``StatsAccumulator`` of ``lrc quantize`` (include/lrc/quant/stats.h), so
    the sums are the pipeline's to the last bit.

    ``precision="mixed"`` sums each 2048-token block in float32 and the blocks in float64
    (about half the time; ``--stats-precision mixed``).
    """

    def __init__(self, d_in: int, abits: int = 4, a_clip: float = 0.9, a_groupsize: int = 0,
                 precision: str = "f64") -> None:
        self._native = _lrc.Stats(int(d_in), int(abits), float(a_clip), int(a_groupsize),
                                  str(precision))

    @classmethod
    def from_arrays(cls, xx: Any, yy: Any, xy: Any, n: int = 0, abits: int = 4,
                    a_clip: float = 0.9, a_groupsize: int = 0) -> "Stats":
        """Statistics given as float64 arrays (d_in x d_in each), e.g. summed elsewhere.

        ``abits``, ``a_clip``, ``a_groupsize`` record the Q_a that Y came from (the layer's
        activation quantizer in a checkpoint); such statistics take no more tokens.
        """
        s = cls.__new__(cls)
        s._native = _lrc.Stats.from_arrays(_matrix(xx, np.float64, "xx"),
                                           _matrix(yy, np.float64, "yy"),
                                           _matrix(xy, np.float64, "xy"), int(n), int(abits),
                                           float(a_clip), int(a_groupsize))
        return s

    def add(self, x: Any) -> "Stats":
        """Add a batch of inputs ``x`` (tokens x d_in; float32 is used as is, else converted).

        Non-finite values raise :class:`Error`. Returns self, so calls chain.
        """
        self._native.add(_matrix(x, np.float32, "Stats.add"))
        return self

    @property
    def d_in(self) -> int:
        return self._native.d_in

    @property
    def n(self) -> int:
        """Tokens accumulated so far."""
        return self._native.n

    @property
    def abits(self) -> int:
        return self._native.abits

    @property
    def a_clip(self) -> float:
        return self._native.a_clip

    @property
    def a_groupsize(self) -> int:
        return self._native.a_groupsize

    def arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(XXᵀ, YYᵀ, XYᵀ) as float64 d_in x d_in copies; ``xy[i, j] = Σ_t x_t[i]·y_t[j]``."""
        return self._native.arrays()

    def __repr__(self) -> str:
        return (f"lrc.Stats(d_in={self.d_in}, n={self.n}, abits={self.abits}, "
                f"a_clip={self.a_clip:g})")


@dataclass
class Solution:
    """One matrix quantized by :func:`solve`: Ŵ (codes, scales, zeros), U, V and eq. 2.

    ``w_hat[r, j] = scales[r, g] · (codes[r, j] − zeros[r, g])``, ``g = j // groupsize`` (one
    group per row when ``groupsize`` is 0). Scales, zeros, U and V hold fp16 values, as a
    checkpoint stores them; ``objective`` is eq. 2, ``‖WX − ŴQ_a(X) − UVᵀX‖²``, of exactly
    these arrays on the statistics given, and ``objective_fp`` is ``‖WX‖²``.
    """

    method: str
    rank: int
    bits: int
    groupsize: int
    codes: np.ndarray   # uint8 [d_out x d_in], one code a byte
    scales: np.ndarray  # float32 [d_out x groups]
    zeros: np.ndarray   # float32 [d_out x groups]
    u: np.ndarray       # float32 [d_out x rank]
    v: np.ndarray       # float32 [d_in x rank]
    w_hat: np.ndarray   # float32 [d_out x d_in], dequantized Ŵ
    objective: float
    objective_fp: float
    abits: int = 16
    a_clip: float = 1.0
    a_groupsize: int = 0

    @property
    def relative_error(self) -> float:
        """eq. 2 relative to ‖WX‖² (what ``lrc quantize --json`` reports as objective_rel)."""
        return self.objective / self.objective_fp if self.objective_fp > 0 else float("nan")

    def __call__(self, x: Any) -> np.ndarray:
        """The quantized linear on inputs x (tokens x d_in): ``Q_a(x)·Ŵᵀ + (x·V)·Uᵀ``."""
        x = _matrix(x, np.float32, "Solution")
        y = quantize_activations(x, self.abits, self.a_clip, self.a_groupsize) @ self.w_hat.T
        if self.rank:
            y += (x @ self.v) @ self.u.T
        return y


def solve(w: Any, stats: Stats, method: str = "lrc", rank: float = 0.1,
          **options: Any) -> Solution:
    """Quantize one weight matrix ``w`` (d_out x d_in) from the statistics of its input.

    Methods (the pipeline's per-linear solvers, pipeline/linear_quantizer.h):

    - ``"rtn"``: round to nearest (with the MSE clip of each row's grid);
    - ``"gptq"``: GPTQ (Frantar et al., paper Appendix A) on H = XXᵀ — QuaRot's baseline;
    - ``"svd"``: GPTQ, then the best rank-k fit of W − Ŵ (LQER-style);
    - ``"lrc"``: the paper's Algorithm 1 — Init-LR (Alg. 4, eq. 7), then ``iters`` times
      Update-Quant (Alg. 2: GPTQ of W̃ = (W − UVᵀ)Σxy Σy⁻¹ on Σy) and Update-LR (Alg. 3).

    ``rank``: below 1 a fraction f of each matrix (k = ⌊f·m·n/(m+n)⌋), else the integer k.
    Other options as :func:`default_options` (those that act on one matrix): ``iters``,
    ``wbits``, ``w_groupsize``, ``w_symmetric``, ``w_mse_clip``, ``update_quant``
    ("gptq"/"rtn"), ``reg`` ("consistent"/"paper"), ``eps_rel``, ``damp``, ``act_order``.
    The activation quantizer is the statistics' own (``Stats(abits=, a_clip=)``).

    The result equals ``lrc solve`` (the CLI) bit for bit for the same W and statistics.
    """
    for key in ("abits", "a_clip", "a_groupsize"):
        if key in options:
            raise Error(f"lrc.solve: {key} belongs to the statistics (Stats({key}=...)): Q_a "
                        "was applied when they were accumulated")
    for key in ("a_clip_search", "target", "rank_alloc"):
        if key in options:
            raise Error(f"lrc.solve: option '{key}' needs the whole pipeline (lrc.quantize)")
    if not isinstance(stats, Stats):
        raise Error("lrc.solve: stats must be an lrc.Stats")
    w = _matrix(w, np.float32, "lrc.solve: w")
    opts = dict(options, method=method, rank=rank)
    r = _lrc.solve(w, stats._native, _options(opts, "lrc.solve"))
    return Solution(abits=stats.abits, a_clip=stats.a_clip, a_groupsize=stats.a_groupsize, **r)


def quantize(model: str, calib: str, out: str, *, tokenizer: Optional[str] = None,
             progress: Optional[Callable[[int, int], Any]] = None, report: Optional[str] = None,
             **options: Any) -> Dict[str, Any]:
    """Quantize a whole model to W4A4 (+ low-rank correction) and write a checkpoint to `out`.

    The pipeline of ``lrc quantize`` (paper §3.2): QuaRot rotation, then layer by layer the
    statistics of each linear's input as produced by the already-quantized model, and the
    linear's solver (``method`` = rtn | gptq | svd | lrc, see :func:`solve`). `model` is an HF
    directory, a GGUF file or a llama2.c file; `calib` a text file. Options are those of
    :func:`default_options` (``method="lrc", rank=0.1, iters=1, a_clip=0.9`` or ``"search"``,
    ``rank_alloc="error"``, ``target="fp"``, ``nsamples``, ``seq``, ``seed``, ...).

    `progress(done, total)` is called after each finished layer (from the calling thread; an
    exception raised in it stops the run and leaves no partial checkpoint). `report`: an SVG
    path for the per-layer picture of ``lrc quantize --report`` (relative eq. 2 error of the
    method and of GPTQ on the same statistics, ranks, clips).

    Returns the report (what ``lrc quantize --json`` prints): per linear its rank, clip and
    eq. 2 objective, and the timings.
    """
    return _lrc.quantize(str(model), str(calib), str(out), tokenizer or "",
                         _options(options, "lrc.quantize"), progress, report or "")


def eval_ppl(model: str, data: str, *, seq: int = 512, max_chunks: int = 0,
             tokenizer: Optional[str] = None, kernels: str = "real",
             progress: bool = False) -> Dict[str, Any]:
    """Perplexity of a model (any format, lrc checkpoints included) on a text file.

    The protocol of ``lrc eval``: the file tokenized a line at a time, cut into chunks of
    seq + 1 tokens, the first `max_chunks` of them (0 = all). ``kernels="real"`` runs the
    integer W4A4 kernels, ``"sim"`` the fp32 simulation. Returns ppl, nll, tokens, chunks, ...
    """
    return _lrc.eval_ppl(str(model), str(data), int(seq), int(max_chunks), tokenizer or "",
                         str(kernels), bool(progress))


@dataclass
class CheckpointLinear:
    """One linear of a checkpoint: Ŵ as codes, scales, zeros; U, V; its Q_a."""

    shape: Tuple[int, int]
    rank: int
    a_bits: int
    a_clip: float
    a_groupsize: int
    u: np.ndarray
    v: np.ndarray
    bits: int = 16
    groupsize: int = 0
    codes: Optional[np.ndarray] = None
    scales: Optional[np.ndarray] = None
    zeros: Optional[np.ndarray] = None
    w: Optional[np.ndarray] = None  # an unquantized linear's weights

    def dequantize(self) -> np.ndarray:
        """Ŵ as float32 [d_out x d_in]: scales · (codes − zeros), as the C++ reader computes it."""
        if self.codes is None:
            assert self.w is not None
            return self.w
        d_out, d_in = self.shape
        gs = self.groupsize or d_in
        idx = np.arange(d_in) // gs
        return ((self.codes.astype(np.float32) - self.zeros[:, idx]) *
                self.scales[:, idx]).astype(np.float32)


@dataclass
class Checkpoint:
    """A model as arrays: every linear by name ("layers.3.mlp.up_proj"), the token embeddings
    (vocab x dim), the RMSNorm weights ("layers.3.input_layernorm", ..., "norm") and, for an
    lrc checkpoint, its ``lrc_config.json`` (else ``{"model": config}``)."""

    config: Dict[str, Any]
    linears: Dict[str, CheckpointLinear] = field(default_factory=dict)
    norms: Dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: Optional[np.ndarray] = None
    norm_eps: float = 1e-5


def load_checkpoint(path: str) -> Checkpoint:
    """Read an lrc checkpoint directory (``lrc quantize`` / :func:`quantize` output) or any FP
    model lrc reads (HF directory, GGUF, llama2.c file: its linears have ``w``).

    A checkpoint's linears are rotated (QuaRot) and hold fp16 values, exactly as the C++
    reader gives them to the forward pass.
    """
    r = _lrc.load_checkpoint(str(path))
    return Checkpoint(config=r["config"],
                      linears={k: CheckpointLinear(**v) for k, v in r["linears"].items()},
                      norms=dict(r["norms"]), embeddings=r["embeddings"],
                      norm_eps=float(r["norm_eps"]))


def tokenize(model: str, text: str, *, tokenizer: Optional[str] = None) -> np.ndarray:
    """Token ids (int32) of `text` with `model`'s tokenizer, BOS first when it adds one."""
    return _lrc.tokenize(str(model), str(text), tokenizer or "")


def quantize_activations(x: Any, bits: int = 4, clip: float = 0.9, groupsize: int = 0) -> np.ndarray:
    """Q_a (paper §2): per token, symmetric round to nearest, scale = clip·max|x| / (2^(b−1) − 1).

    Returns the dequantized values (tokens x d, float32); ``bits=16`` returns x unchanged.
    """
    return _lrc.quantize_activations(_matrix(x, np.float32, "quantize_activations"), int(bits),
                                     float(clip), int(groupsize))


def plot_demo(rows: Any, path: str, *, caption: str = "") -> None:
    """Draw ``lrc demo --plot``'s picture from demo rows: the paper's Fig. 2 (perplexity
    against rank for the LRC and SVD rows, QuaRot-GPTQ and FP as levels) or, for ablations and
    several seeds, gap-closed bars with a point per seed.

    `rows` is what ``lrc demo --json`` prints (the whole document or its ``"rows"`` list), or
    any list of dicts with ``method``, ``rank``, ``ppl``, ``gap_closed`` (None for FP) and
    optionally ``settings`` and ``ppl_seeds``. Writes a self-contained SVG to `path`; with the
    command line as `caption` it is the CLI's file byte for byte.
    """
    _lrc.plot_demo(json.dumps(rows), str(path), caption)
