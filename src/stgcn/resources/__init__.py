"""Files shipped with the package: label lists, the bundled demo dataset and video."""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    return RESOURCES.joinpath(*parts)


def _lines(name: str) -> list[str]:
    return [ln.strip() for ln in resource_path(name).read_text().splitlines() if ln.strip()]


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics class names in the order of the official label indices."""
    return _lines("kinetics400-labels.txt")


def kinetics_motion_classes() -> list[str]:
    """The 30 Kinetics-Motion classes of the paper's Table 4."""
    return _lines("kinetics-motion-classes.txt")
