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
from collections.abc import Sequence
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
    precision: str = "fp32"
    real_samples: int = 0            # int8: real inputs (not used to calibrate) scored by both
    real_agreement: float | None = None  # their top-1 agreement, int8 file vs torch fp32
    real_max_abs_diff: float | None = None

    def summary(self) -> str:
        real = "" if not self.real_samples else (
            f"\nonnxruntime int8 vs torch fp32 on {self.real_samples} real inputs not used to calibrate: top-1 "
            f"agreement {100 * self.real_agreement:.2f} %, max abs logit diff {self.real_max_abs_diff:.2e}")
        return (f"wrote {self.path} ({self.precision}, opset {self.opset}, dynamic N, T and M; exported at "
                f"{self.export_shape})\n"
                f"onnxruntime {self.precision} vs torch fp32 on {self.check_shape}"
                + (" (random input, outside the calibrated ranges)" if self.precision == "int8" else "")
                + f": max abs diff {self.max_abs_diff:.2e} (logits up to {self.max_abs_logit:.2f})" + real + "\n"
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


def _session(ort, path: str, threads: int):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads  # same thread count as torch: the timing compares runtimes, not cores
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _torch_export(model: Any, example: Any, path: str, opset: int) -> None:
    import torch

    with warnings.catch_warnings():
        # the legacy exporter is deprecated in favour of dynamo, and the model's input checks
        # trace to constants; neither changes the exported graph
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model, (example,), path, dynamo=False, opset_version=opset, input_names=["skeleton"],
                output_names=["logits"], dynamic_axes={"skeleton": {0: "batch", 2: "frames", 4: "persons"},
                                                       "logits": {0: "batch"}},
            )
        except OSError:
            raise  # a full disk is not a model problem: atomic_path reports it as WriteError
        except Exception as exc:  # torch raises many unrelated types here
            raise ExportError(f"torch.onnx.export failed for this model: {type(exc).__name__}: {exc}") from exc


def _with_metadata(onnx, path: str, meta: dict) -> None:
    proto = onnx.load(path)
    for k, val in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, val
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def export_onnx(model: Any, path: str | Path, *, opset: int = 17, num_persons: int = 1, example_frames: int = 64,
                check_frames: int = 37, check_batch: int = 3, tolerance: float = 1e-4, timing_frames: int = 64,
                repeat: int = 10, metadata: dict | None = None, seed: int = 0, precision: str = "fp32",
                calibration: Sequence[np.ndarray] = (), real_inputs: Sequence[np.ndarray] = (),
                min_agreement: float = 0.99) -> ExportReport:
    """Export ``model`` to ``path`` (written atomically) and check it with onnxruntime.

    ``precision="int8"``: the checked fp32 file is quantised statically (:mod:`stgcn.export.quantize`)
    with activation ranges from ``calibration`` (model inputs (clips, C, T, V, M)); the int8 file is
    checked for its dynamic axes on the same input, and its top-1 agreement with torch fp32 on
    ``real_inputs`` (inputs not used to calibrate) must reach ``min_agreement``.

    Raises :class:`ExportError` when export fails, the fp32 max abs difference exceeds ``tolerance``
    or the int8 agreement falls short.
    """
    import torch

    from ..errors import ConfigError
    from ..models import optimize_for_inference

    if precision not in ("fp32", "int8"):
        raise ConfigError(f"ONNX export precision must be fp32 or int8, found {precision!r} (onnxruntime's CPU "
                          "provider has no bf16 convolutions)")
    if precision == "int8" and not calibration:
        raise ConfigError("an int8 export needs calibration inputs (stgcn export --calibration STORE)")
    onnx = require("onnx", "onnx")
    ort = require("onnxruntime", "onnx")
    model = optimize_for_inference(model)  # fused copy: the folded graph is what gets exported
    c, v, m = input_spec(model, num_persons)
    path = Path(path)
    g = torch.Generator().manual_seed(seed)
    example = torch.randn(1, c, example_frames, v, m, generator=g)
    threads = torch.get_num_threads()
    meta = {"producer": "stgcn", "input_layout": "N,C,T,V,M", "joints": str(v), "channels": str(c),
            "persons": str(m), "precision": precision}
    meta.update({k: val if isinstance(val, str) else json.dumps(val) for k, val in (metadata or {}).items()})
    with atomic_path(path) as tmp_path:
        tmp = str(tmp_path)
        _torch_export(model, example, tmp, opset)
        x = torch.randn(check_batch, c, check_frames, v, m + 1, generator=g)  # another M than exported
        with torch.inference_mode():
            ref = model(x).numpy()
        diff = _check(_session(ort, tmp, threads), x, ref)
        if not diff <= tolerance:
            raise ExportError(f"onnxruntime and torch disagree: max abs diff {diff:.3g} > {tolerance:g} "
                              f"on input {tuple(x.shape)}")
        real = {}
        if precision == "int8":
            diff, real = _quantize(model, tmp, x, ref, threads, calibration, real_inputs, min_agreement)
        _with_metadata(onnx, tmp, meta)
        sess = _session(ort, tmp, threads)
        xt = torch.randn(1, c, timing_frames, v, m, generator=g)
        xn = xt.numpy()
        ort_ms = _time(lambda: sess.run(["logits"], {"skeleton": xn}), repeat)
        with torch.inference_mode():
            torch_ms = _time(lambda: model(xt), repeat)
    return ExportReport(path=path, opset=opset, export_shape=tuple(example.shape), check_shape=tuple(x.shape),
                        max_abs_diff=diff, max_abs_logit=float(np.abs(ref).max()), ort_ms=ort_ms,
                        torch_ms=torch_ms, timing_shape=tuple(xt.shape), repeat=repeat, threads=threads,
                        precision=precision, **real)


def _check(sess, x, ref: np.ndarray) -> float:
    """Max abs difference of the file's logits to torch's on ``x`` (its shape checked first)."""
    got = sess.run(["logits"], {"skeleton": x.numpy()})[0]
    if got.shape != ref.shape:
        raise ExportError(f"onnxruntime returned shape {got.shape}, torch {ref.shape}: an axis is not dynamic")
    return float(np.abs(got - ref).max())


def _quantize(model, tmp: str, x, ref, threads, calibration, real_inputs, min_agreement) -> tuple[float, dict]:
    """Replace the checked fp32 file ``tmp`` by its int8 form; (its max abs diff on ``x``, the
    agreement fields of the report on ``real_inputs``)."""
    import os

    import onnxruntime as ort
    import torch

    from .quantize import quantize_int8

    fp32 = tmp + ".fp32.onnx"
    os.replace(tmp, fp32)
    try:
        quantize_int8(fp32, tmp, calibration)
    finally:
        os.unlink(fp32)
    sess = _session(ort, tmp, threads)
    diff = _check(sess, x, ref)
    if not real_inputs:
        return diff, {}
    # one input at a time: clips of a contract without a fixed length differ in T
    with torch.inference_mode():
        want = np.concatenate([model(torch.from_numpy(np.asarray(x, np.float32))).numpy() for x in real_inputs])
    got = np.concatenate([sess.run(["logits"], {"skeleton": np.asarray(x, np.float32)})[0] for x in real_inputs])
    agree = float(np.mean(got.argmax(1) == want.argmax(1)))
    if agree < min_agreement:
        raise ExportError(f"the int8 model agrees with fp32 on {100 * agree:.1f} % of {len(got)} real inputs, "
                          f"below the {100 * min_agreement:.1f} % asked for (calibrate on more samples, or "
                          "export fp32)")
    return diff, {"real_samples": len(got), "real_agreement": agree,
                  "real_max_abs_diff": float(np.abs(got - want).max())}


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, opset: int = 17, calibration: str | None = None,
                      calibration_split: str | None = None, calibration_samples: int = 64,
                      check_split: str | None = None, **kw: Any) -> ExportReport:
    """Export an stgcn checkpoint at its contract's M; class names, layout and the data contract go
    into the ONNX metadata. For ``precision="int8"``, ``calibration`` is a prepared store of the
    checkpoint's layout: ``calibration_samples`` of its clips (of ``calibration_split``, or all) set the
    activation ranges, up to 1024 others (of ``check_split``, else the rest) check the agreement with fp32."""
    from ..checkpoint import load_model
    from ..contract import DataContract

    model, meta = load_model(checkpoint)
    if not hasattr(model, "layout"):
        raise CheckpointError(f"{checkpoint}: the model has no layout")
    contract = DataContract.from_meta(meta, model, source=str(checkpoint))
    md = {"class_names": meta.get("class_names", []), "layout": contract.layout.name, "data": contract.to_dict()}
    if calibration is not None:
        from .quantize import calibration_inputs

        kw["calibration"], kw["real_inputs"] = calibration_inputs(calibration, contract, split=calibration_split,
                                                                  samples=calibration_samples,
                                                                  check_split=check_split)
    return export_onnx(model, out, opset=opset, num_persons=contract.num_persons, metadata=md, **kw)
