"""stgcn.data: load_sample and guess_format on paths they cannot read."""

from __future__ import annotations

import pytest

from stgcn.data import load_sample
from stgcn.errors import DataError


def test_load_sample_on_unrecognised_paths_names_them(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no \*_keypoints\.json") as info:
        load_sample(tmp_path)
    assert info.value.file == str(tmp_path)
    with pytest.raises(DataError, match="cannot tell the format") as info:
        load_sample(tmp_path / "notes.txt")
    assert info.value.file == str(tmp_path / "notes.txt")
    (tmp_path / "other.json").write_text('{"frames": []}')
    with pytest.raises(DataError, match="without a 'data' key") as info:
        load_sample(tmp_path / "other.json")
    with pytest.raises(DataError, match="unknown format 'mp3'"):
        load_sample(tmp_path / "notes.txt", format="mp3")
    with pytest.raises(DataError, match="bad options"):
        load_sample(tmp_path / "other.json", format="kinetics", colour="red")
