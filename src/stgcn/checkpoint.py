"""Checkpoints: atomic writes and safe loads.

Every write goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed
over the target, so a crash or a full disk never leaves a half-written checkpoint under the real
name. Every load goes through ``torch.load(weights_only=True)``: a checkpoint that carries a pickled
callable is refused instead of executed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)
from .errors import CheckpointError, WriteError

FORMAT = "stgcn"
FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` with the atomicity of :func:`stgcn.atomic.atomic_write_bytes`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except WriteError as exc:
        raise CheckpointError(str(exc)) from exc


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; errors become :class:`CheckpointError`.

    The messages never repeat torch's advice to retry with ``weights_only=False``: for a file of
    unknown origin that would run whatever it carries.
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save: a zip, or (legacy) a pickle
        raise CheckpointError(f"{path}: not a checkpoint (a torch checkpoint is a zip archive or a pickle; "
                              f"this file starts with {head!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol ..." on damaged bytes
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        globals_ = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln]
        if globals_:
            raise CheckpointError(
                f"{path}: refused to load: the file contains objects other than tensors and plain data, "
                f"which may carry executable code ({globals_[0]})") from None
        raise CheckpointError(f"{path}: not a readable torch checkpoint (damaged, or not a checkpoint: "
                              f"{_unpickler_detail(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes raise almost anything from torch's readers
        # (IndexError, KeyError, struct.error, AssertionError, ...); KeyboardInterrupt is no Exception
        detail = _first_line(exc)
        found = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint (found {found})") from None


def _unpickler_detail(exc: BaseException) -> str:
    # torch's message is advice first, then the unpickler's reason; keep only the reason
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reasons = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Please file an issue",
                                                          "Check the documentation"))]
    return reasons[0] if reasons else "the unpickler refused it"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def save_model(path: str | Path, model: nn.Module, meta: dict | None = None, **extra: Any) -> None:
    """A self-describing checkpoint: the model's config, its weights and ``meta`` (class names,
    layout, the data contract for inference). ``extra`` (optimiser state, epoch, ...) is stored as is.
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if getattr(model, "fused", False):  # its weights are folded: no config rebuilds that state dict
        raise CheckpointError(f"{path}: the model is fused for inference (model.fuse()); save the unfused model")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {"format": FORMAT, "version": FORMAT_VERSION, "model_config": model.config,
            "state_dict": state, "meta": dict(meta or {}), **extra}
    atomic_torch_save(ckpt, path)


def build_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> tuple[nn.Module, dict]:
    from .models.registry import build_model

    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not an stgcn checkpoint (no 'format': 'stgcn' entry). For a checkpoint "
                              "of the official code use stgcn.compat.load_official or `stgcn convert-official`")
    if ckpt.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{source}: checkpoint format version {ckpt['version']} is newer than this "
                              f"stgcn ({FORMAT_VERSION}); upgrade stgcn")
    cfg = ckpt["model_config"]
    model = build_model(cfg["name"], params=cfg["params"])
    load_state_dict_strict(model, ckpt["state_dict"], source)
    model.eval()
    return model, dict(ckpt.get("meta", {}))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_model`; returns ``(model in eval mode, meta)``."""
    return build_from_checkpoint(safe_load(path, map_location), str(path))


def load_state_dict_strict(model: nn.Module, state: dict, source: str = "checkpoint") -> None:
    """Load weights, raising :class:`CheckpointError` that lists missing/unexpected keys and shape
    mismatches (expected vs found) instead of loading anything partially."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: expected {tuple(own[k].shape)}, found {tuple(state[k].shape)}"
              for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatches (another layout, strategy or class count?): " + "; ".join(shapes[:10]))
        if missing:
            parts.append(f"missing keys: {missing[:20]}{' ...' if len(missing) > 20 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}")
        raise CheckpointError(f"{source}: weights do not fit the model: " + " | ".join(parts))
    model.load_state_dict(state, strict=True)
