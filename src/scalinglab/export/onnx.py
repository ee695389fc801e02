"""A trained run as an ONNX graph (GPT and the recurrent family), checked with onnxruntime.

The graphs, with dynamic batch and sequence axes:

- GPT: `input_ids` int64 (B, T), T <= block_size -> `logits` float32 (B, T, V).
- RNN/GRU: `input_ids` (B, T), `state_h` (n_layer, B, H) -> `logits`, `state_h_out`.
- LSTM: `input_ids`, `state_h`, `state_c` -> `logits`, `state_h_out`, `state_c_out`.

A recurrent graph takes and returns its hidden state, so a caller can feed a
prompt once and then one token at a time, as `scalinglab generate` does; a
zero state is the model's start (`init_state`).

Export goes through `torch.onnx.export(dynamo=True)` (which needs `onnxscript`),
except for the Elman RNNs (see `_export_torchscript`).
The file is written under a temporary folder, run with onnxruntime on a random
batch and compared with our model's outputs, and moved into place only when
the largest difference is within ATOL + RTOL * max|ours|.
"""

import contextlib
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from scalinglab.errors import ConfigError, ExportError, require
from scalinglab.export import check_out_apart, temp_beside
from scalinglab.train.evaluate import load_trained

log = logging.getLogger(__name__)

# Accepted: |theirs - ours| <= ATOL + RTOL * max|ours|. Kernels sum in other orders, and
# an RNN's float32 rounding grows with the sequence and the size of its logits.
ATOL, RTOL = 1e-4, 1e-5


class _GPTGraph(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids)[0]


class _RNNGraph(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, state_h):
        logits, _, h = self.model(input_ids, state=state_h)
        return logits, h


class _LSTMGraph(_RNNGraph):
    def forward(self, input_ids, state_h, state_c):
        logits, _, (h, c) = self.model(input_ids, state=(state_h, state_c))
        return logits, h, c


def graph_io(model) -> tuple[torch.nn.Module, list[str], list[str]]:
    """(module to export, input names, output names) for one of our models."""
    if not getattr(model, "recurrent", False):
        return _GPTGraph(model).eval(), ["input_ids"], ["logits"]
    lstm = model.arch == "lstm"
    names = ["state_h", "state_c"] if lstm else ["state_h"]
    return (
        (_LSTMGraph if lstm else _RNNGraph)(model).eval(),
        ["input_ids", *names],
        ["logits", *(n + "_out" for n in names)],
    )


def example_inputs(model, batch: int, seq: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random token ids (and, for RNNs, a random non-zero state) of the graph's inputs."""
    gen = torch.Generator().manual_seed(seed)
    v = model.lm_head.weight.size(0) if hasattr(model, "lm_head") else model.decoder.out_features
    idx = torch.randint(0, v, (batch, seq), generator=gen)
    if not getattr(model, "recurrent", False):
        return (idx,)
    state = model.init_state(batch, "cpu")
    state = state if isinstance(state, tuple) else (state,)
    return (idx, *(0.5 * torch.randn(s.shape, generator=gen) for s in state))


def _dynamic_shapes(model, n_inputs: int):
    batch = torch.export.Dim("batch")
    if not getattr(model, "recurrent", False):
        # Learned positions and rotary tables stop at block_size.
        seq = torch.export.Dim("seq", max=model.block_size)
        return ({0: batch, 1: seq},)
    return ({0: batch, 1: torch.export.Dim.DYNAMIC}, *({1: batch} for _ in range(n_inputs - 1)))


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs and warns about its own internals (torchvision ops, deprecations,
    each optimisation pass), which says nothing to our user."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _summary(exc: Exception) -> str:
    """The exporter's one-line cause (its messages run to pages of advice)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.startswith("<class ")]
    return causes[0] if causes else f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _torchscript(model) -> bool:
    return getattr(model, "arch", "") in ("rnn_tanh", "rnn_relu")


def opset_range(model) -> tuple[int, int]:
    """(lowest, highest) ONNX opset the exporter used for `model` supports, as torch states
    it: torch.export's from its torchlib opset (below it the exporter silently writes
    that one instead), the TorchScript exporter's (Elman RNNs) from ONNX's minimum."""
    try:
        from torch.onnx import _constants as c
        from torch.onnx._internal.exporter import _constants as dynamo

        if _torchscript(model):
            return c.ONNX_MIN_OPSET, c.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
        return dynamo.TORCHLIB_OPSET, c.ONNX_MAX_OPSET
    except (ImportError, AttributeError):  # a torch without them: what torch 2.13 states
        return (7, 20) if _torchscript(model) else (18, 23)


def check_opset(model, opset: int | None) -> None:
    """Refuse an --opset the exporter cannot write for `model` (None: its default)."""
    lo, hi = opset_range(model)
    if opset is not None and not lo <= opset <= hi:
        raise ConfigError(
            f"--opset {opset}: the ONNX exporter writes opsets {lo} to {hi} "
            f"for this model ({getattr(model, 'arch', 'gpt')})"
        )


def to_onnx(model, path: Path, opset: int | None = None) -> None:
    """Write `model` (float32, CPU, eval mode) as an ONNX file at `path`."""
    check_opset(model, opset)
    module, inputs, outputs = graph_io(model)
    args = example_inputs(model, 2, min(model.block_size, 8))
    with _quiet_exporter():
        try:
            if _torchscript(model):
                _export_torchscript(module, args, path, inputs, outputs, opset)
            else:
                require("onnxscript", "export", "export to ONNX")
                prog = torch.onnx.export(
                    module, args, dynamo=True, input_names=inputs, output_names=outputs,
                    dynamic_shapes=_dynamic_shapes(model, len(args)), opset_version=opset,
                    verbose=False,
                )  # fmt: skip
                prog.save(str(path))
        except OSError as exc:  # a write failed (a full disk): the CLI names the file
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        except Exception as exc:  # the exporter raises many types; name the cause
            raise ExportError(f"torch.onnx.export failed: {_summary(exc)}") from None
    head = model.lm_head if hasattr(model, "lm_head") else model.decoder
    _name_axes(path, head.out_features)


def _export_torchscript(module, args, path, inputs, outputs, opset) -> None:
    """The TorchScript exporter, for Elman RNNs: torch.export unrolls `nn.RNN` over the
    example's time steps (fixing the sequence length), while this exporter emits ONNX's
    RNN operator, which takes any length."""
    axes = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    axes |= {n: {1: "batch"} for n in (*inputs[1:], *outputs[1:])}
    torch.onnx.export(
        module, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
        dynamic_axes=axes, opset_version=opset or 17,
    )  # fmt: skip


def _name_axes(path: Path, vocab: int) -> None:
    """Name the token axes 'batch' and 'seq' on input_ids and logits, and give logits its
    vocabulary size (an RNN's was an expression of the example's length).

    The exporter annotates an LSTM's output with the example's fixed length
    (onnxruntime then warns on every other length), and names a free axis 's70'.
    The intermediate shape hints are optional: onnxruntime infers its own.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    del proto.graph.value_info[:]
    ids, logits = proto.graph.input[0], proto.graph.output[0]
    for graph_value in (ids, logits):
        dims = graph_value.type.tensor_type.shape.dim
        for i, name in ((0, "batch"), (1, "seq")):
            dims[i].Clear()
            dims[i].dim_param = name
    last = logits.type.tensor_type.shape.dim[2]
    last.Clear()
    last.dim_value = vocab
    onnx.save(proto, str(path))


@torch.no_grad()
def compare(model, path: Path, batch: int = 3, seq: int | None = None) -> tuple[float, float]:
    """(max abs difference between onnxruntime's outputs and ours, max abs of ours)."""
    ort = require("onnxruntime", "export", "checking an ONNX export")
    # Another shape than the one exported with, so the dynamic axes are exercised.
    args = example_inputs(model, batch, seq or model.block_size, seed=1)
    module, inputs, _ = graph_io(model)
    ours = module(*args)
    ours = [o.numpy() for o in (ours if isinstance(ours, tuple) else (ours,))]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {n: a.numpy() for n, a in zip(inputs, args, strict=True)})
    diff = max(float(np.abs(t - o).max()) for t, o in zip(theirs, ours, strict=True))
    return diff, max(float(np.abs(o).max()) for o in ours)


def onnx_difference(model, path: Path, batch: int = 3, seq: int | None = None) -> float:
    """Max abs difference between onnxruntime's outputs for `path` and our model's."""
    return compare(model, path, batch, seq)[0]


def export_onnx(run_dir, out_file, force: bool = False, opset: int | None = None) -> dict:
    """Export a run's newest checkpoint to `out_file` (.onnx); returns what was written and checked."""
    require("onnxruntime", "export", "export to ONNX")
    out = Path(out_file)
    if out.suffix != ".onnx":
        raise ExportError(f"--out {out}: an ONNX export is one file whose name ends in .onnx")
    check_out_apart(run_dir, out)
    if out.is_dir() and not out.is_symlink():  # found only after the whole export before
        raise ExportError(f"--out {out} is a folder; an ONNX export is one .onnx file")
    if out.exists() and not force:
        raise ExportError(f"--out {out} exists; pass --force to replace it")
    model, cfg, step = load_trained(run_dir, "cpu")
    check_out_apart(run_dir, out, data=cfg.train.data)  # not among its shards, as hf
    model.float().eval()
    check_opset(model, opset)
    tmp = temp_beside(out, out_file)
    try:
        try:
            to_onnx(model, tmp / out.name, opset)
        except OSError as exc:  # named by the temporary file (an audit): the user's is --out
            raise OSError(exc.errno, exc.strerror, str(out)) from None
        # An RNN is checked on a longer sequence than a window: the state carries on.
        seq = 2 * cfg.model.block_size if model.recurrent else cfg.model.block_size
        diff, scale = compare(model, tmp / out.name, seq=seq)
        if not diff <= ATOL + RTOL * scale:
            raise ExportError(
                f"onnxruntime's outputs differ from ours by {diff:.3g} (outputs up to "
                f"{scale:.3g}; accepted: {ATOL} + {RTOL} x that); "
                f"nothing was written to {out}"
            )
        for f in tmp.iterdir():  # the .onnx file, and external weights if it needed any
            os.replace(f, out.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("exported %s (step %d) to %s", run_dir, step, out)
    _, inputs, outputs = graph_io(model)
    return {
        "format": "onnx", "out": str(out), "arch": cfg.model.arch, "step": step,
        "inputs": inputs, "outputs": outputs, "max_abs_diff": diff, "max_abs_output": scale,
        "bytes": out.stat().st_size,
    }  # fmt: skip
