import errno
import io
import os
from pathlib import Path

import pytest
import torch

import stgcn
from stgcn import atomic
from stgcn.checkpoint import atomic_torch_save, load_model, safe_load, save_model
from stgcn.errors import CheckpointError


def test_round_trip_restores_model_and_meta(tmp_path):
    m = stgcn.create_model("stgcn-tiny", layout="kinect-v1", strategy="distance", num_classes=5).eval()
    path = tmp_path / "m.pt"
    save_model(path, m, {"class_names": list("abcde"), "layout": "kinect-v1"})
    m2, meta = load_model(path)
    assert meta["class_names"] == list("abcde") and not m2.training
    x = torch.randn(2, 3, 16, 20, 1)
    torch.testing.assert_close(m(x), m2(x), rtol=0, atol=0)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 1}, path)

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match="No space left"):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert safe_load(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_not_an_stgcn_checkpoint(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="not an stgcn checkpoint"):
        load_model(p)


def test_weights_of_another_layout_are_refused(tmp_path):
    m = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=5)
    path = tmp_path / "m.pt"
    save_model(path, m, {})
    ckpt = safe_load(path)
    other = stgcn.create_model("stgcn-tiny", layout="openpose", num_classes=5)
    ckpt["model_config"] = other.config
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"expected \(3, 18, 18\), found \(3, 20, 20\)"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"not a checkpoint\n", bytes(range(200, 256)) * 40])
def test_bytes_that_are_no_torch_file_are_not_a_checkpoint(tmp_path, content):
    p = tmp_path / "x.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a checkpoint") as info:
        safe_load(p)
    assert "weights_only" not in str(info.value)  # never torch's advice to load it unsafely


def test_pickled_code_is_refused_without_the_unsafe_advice(tmp_path):

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    buf = io.BytesIO()
    torch.save({"x": Evil()}, buf)
    p = tmp_path / "evil.pt"
    p.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="may carry executable code.*GLOBAL") as info:
        safe_load(p)
    assert "weights_only" not in str(info.value)


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    m = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3)
    save_model(path, m, {"class_names": ["a", "b", "c"], "layout": "kinect-v1"})
    return path


@pytest.mark.parametrize("damage", ["half", "tail_cut", "head_only", "empty", "zeros"])
def test_damaged_checkpoint_is_a_checkpoint_error(model_ckpt, tmp_path, damage):
    raw = model_ckpt.read_bytes()
    bad = {"half": raw[: len(raw) // 2], "tail_cut": raw[:-10], "head_only": raw[:100], "empty": b"",
           "zeros": bytes(4096)}[damage]
    p = tmp_path / "damaged.pt"
    p.write_bytes(bad)
    with pytest.raises(CheckpointError) as info:
        load_model(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize("damage", ["text_file", "first_byte_flipped", "lone_proto_opcode"])
def test_non_zip_damaged_checkpoint_is_a_checkpoint_error(model_ckpt, tmp_path, damage):
    raw = model_ckpt.read_bytes()
    bad = {"text_file": b"this is not a checkpoint\n" * 100, "first_byte_flipped": b"Q" + raw[1:],
           "lone_proto_opcode": b"\x80"}[damage]
    p = tmp_path / "damaged.pt"
    p.write_bytes(bad)
    with pytest.raises(CheckpointError):
        load_model(p)
