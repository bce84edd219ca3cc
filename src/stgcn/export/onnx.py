"""ONNX export with dynamic batch, time and person axes, checked against onnxruntime.

The model is exported in its fused form (:func:`stgcn.models.optimize_for_inference`: batch norms
folded, each block's graph step one batched ``MatMul``), with the legacy TorchScript exporter
(``dynamo=False``) at opset 17, which keeps N, T and M dynamic because the model pools with ``mean``
(``avg_pool2d(x, x.size()[2:])`` would freeze them). The dynamo exporter works too but emits opset
18 whatever is asked.

A checkpoint is exported at its data contract's person slots (M = 1 for a one-person model) and the
contract goes into the metadata (``data``: layout table, M, channels, test pipeline), so whoever runs
the file builds its input as :meth:`stgcn.contract.DataContract.prepare` does. After export the file
is run with onnxruntime on a random input of a *different* batch size, length and person count than
the export example, and compared with torch eager (max abs difference), so a shape that was baked in
during tracing is caught here rather than in production.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import CheckpointError, ShapeError, StgcnError, require


class ExportError(StgcnError):
    """The model could not be exported, or the exported file disagrees with torch."""


@dataclass
class ExportReport:
    path: Path
    opset: int
    export_shape: tuple[int, ...]
    check_shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_logit: float
    ort_ms: float
    torch_ms: float
    timing_shape: tuple[int, ...]
    repeat: int = 10
    threads: int = 1

    def summary(self) -> str:
        return (f"wrote {self.path} (opset {self.opset}, dynamic N, T and M; exported at {self.export_shape})\n"
                f"onnxruntime vs torch on {self.check_shape}: max abs diff {self.max_abs_diff:.2e} "
                f"(logits up to {self.max_abs_logit:.2f})\n"
                f"best of {self.repeat} on {self.timing_shape}, {self.threads} thread(s): "
                f"onnxruntime {self.ort_ms:.2f} ms, torch eager {self.torch_ms:.2f} ms "
                f"({self.torch_ms / self.ort_ms:.2f}x)")


def input_spec(model: Any, num_persons: int) -> tuple[int, int, int]:
    """(C, V, M) of a model's input with ``num_persons`` person slots."""
    params = (getattr(model, "config", {}) or {}).get("params", {})
    c = int(params.get("in_channels", 3))
    layout = getattr(model, "layout", None)
    if layout is None:
        raise ShapeError("the model has no layout attribute; cannot tell its number of joints")
    return c, layout.num_joints, num_persons


def _time(fn, repeat: int) -> float:
    fn()  # warm-up: first runs allocate and pick kernels
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def export_onnx(model: Any, path: str | Path, *, opset: int = 17, num_persons: int = 1, example_frames: int = 64,
                check_frames: int = 37, check_batch: int = 3, tolerance: float = 1e-4, timing_frames: int = 64,
                repeat: int = 10, metadata: dict | None = None, seed: int = 0) -> ExportReport:
    """Export ``model`` to ``path`` (written atomically) and check it with onnxruntime.

    Raises :class:`ExportError` when export fails or the max abs difference exceeds ``tolerance``.
    """
    import torch

    from ..models import optimize_for_inference

    onnx = require("onnx", "onnx")
    ort = require("onnxruntime", "onnx")
    model = optimize_for_inference(model)  # fused copy: the folded graph is what gets exported
    c, v, m = input_spec(model, num_persons)
    path = Path(path)
    g = torch.Generator().manual_seed(seed)
    example = torch.randn(1, c, example_frames, v, m, generator=g)
    with atomic_path(path) as tmp_path:
        tmp = str(tmp_path)
        with warnings.catch_warnings():
            # the legacy exporter is deprecated in favour of dynamo, and the model's input checks
            # trace to constants; neither changes the exported graph
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model, (example,), tmp, dynamo=False, opset_version=opset, input_names=["skeleton"],
                    output_names=["logits"], dynamic_axes={"skeleton": {0: "batch", 2: "frames", 4: "persons"},
                                                           "logits": {0: "batch"}},
                )
            except OSError:
                raise  # a full disk is not a model problem: atomic_path reports it as WriteError
            except Exception as exc:  # torch raises many unrelated types here
                raise ExportError(f"torch.onnx.export failed for this model: {type(exc).__name__}: {exc}") from exc
        proto = onnx.load(tmp)
        meta = {"producer": "stgcn", "input_layout": "N,C,T,V,M", "joints": str(v), "channels": str(c),
                "persons": str(m)}
        meta.update({k: val if isinstance(val, str) else json.dumps(val) for k, val in (metadata or {}).items()})
        for k, val in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, val
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

        so = ort.SessionOptions()
        so.log_severity_level = 3
        # same thread count as torch, so the timing compares runtimes and not core counts
        so.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(tmp, so, providers=["CPUExecutionProvider"])
        x = torch.randn(check_batch, c, check_frames, v, m + 1, generator=g)  # another M than exported
        with torch.inference_mode():
            ref = model(x).numpy()
        got = sess.run(["logits"], {"skeleton": x.numpy()})[0]
        if got.shape != ref.shape:
            raise ExportError(f"onnxruntime returned shape {got.shape}, torch {ref.shape}: an axis is not dynamic")
        diff = float(np.abs(got - ref).max())
        if not diff <= tolerance:
            raise ExportError(f"onnxruntime and torch disagree: max abs diff {diff:.3g} > {tolerance:g} "
                              f"on input {tuple(x.shape)}")
        xt = torch.randn(1, c, timing_frames, v, m, generator=g)
        xn = xt.numpy()
        ort_ms = _time(lambda: sess.run(["logits"], {"skeleton": xn}), repeat)
        with torch.inference_mode():
            torch_ms = _time(lambda: model(xt), repeat)
    return ExportReport(path=path, opset=opset, export_shape=tuple(example.shape), check_shape=tuple(x.shape),
                        max_abs_diff=diff, max_abs_logit=float(np.abs(ref).max()), ort_ms=ort_ms,
                        torch_ms=torch_ms, timing_shape=tuple(xt.shape), repeat=repeat, threads=torch.get_num_threads())


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, opset: int = 17, **kw: Any) -> ExportReport:
    """Export an stgcn checkpoint at its contract's M; class names, layout and the data contract go
    into the ONNX metadata."""
    from ..checkpoint import load_model
    from ..contract import DataContract

    model, meta = load_model(checkpoint)
    if not hasattr(model, "layout"):
        raise CheckpointError(f"{checkpoint}: the model has no layout")
    contract = DataContract.from_meta(meta, model, source=str(checkpoint))
    md = {"class_names": meta.get("class_names", []), "layout": contract.layout.name, "data": contract.to_dict()}
    return export_onnx(model, out, opset=opset, num_persons=contract.num_persons, metadata=md, **kw)
