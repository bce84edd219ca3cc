"""Readers of skeleton data: one clip (:func:`load_sample`) or a whole dataset (:func:`open_source`).

Imports stay light (numpy only): torch is not needed to read data.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .sample import Sample
from .sources import DatasetSource, SourceItem, list_sources, load_item, open_source, read_clip

__all__ = ["Sample", "load_sample", "open_source", "list_sources", "load_item", "SourceItem",
           "DatasetSource", "guess_format"]


def guess_format(path: str | Path) -> str:
    """The format of a file or folder, from its name (and, for ``.json``, its keys)."""
    p = Path(path)
    if p.is_dir():
        if any(p.glob("*_keypoints.json")):
            return "openpose"
        raise DataError("folder holds no *_keypoints.json (the only folder format of load_sample)", file=str(p))
    name = p.name.lower()
    if name.endswith(".skeleton"):
        return "ntu"
    if name.endswith(".pkl") or name.endswith(".pickle"):
        return "pyskl"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".json"):
        try:
            doc = json.loads(p.read_bytes())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read JSON: {exc}", file=str(p)) from None
        if isinstance(doc, dict) and "data" in doc:
            return "kinetics"
        raise DataError("JSON without a 'data' key is not a Kinetics-skeleton clip", file=str(p))
    raise DataError("cannot tell the format from the name; pass format= (--format on the command line): "
                    "ntu, kinetics, openpose, pyskl, npy, npz, msr-action3d, utkinect, kard, florence3d, sbu",
                    file=str(p))


def load_sample(path: str | Path, format: str | None = None, **options) -> Sample:
    """Read one clip. ``format`` is guessed from the path when None; ``options`` go to the reader
    (e.g. ``max_bodies=``, ``body_selection=`` for ntu, ``name=`` for pyskl, ``pad_to=`` for kinetics)."""
    return read_clip(format or guess_format(path), str(path), options)
