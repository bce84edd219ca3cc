"""Atomic writes (stgcn.atomic): a failing rename, an interrupt or a failing temporary file keep the
previous file; output folders are checked before the work."""

from __future__ import annotations

import errno
import os

import pytest

from stgcn import atomic
from stgcn.checkpoint import atomic_write_bytes
from stgcn.errors import WriteError


def test_failing_rename_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_write_bytes(path, b"old")

    def eio(*a, **k):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic.os, "replace", eio)
    with pytest.raises(WriteError, match=r"could not write .*last\.pt.*previous file .* unchanged"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_interrupt_during_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_write_bytes(path, b"old")

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_failing_temp_file_creation_is_a_write_error(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_bytes(path, b"old")

    def no_inode_left(*a, **k):  # ENOSPC at creat(): a disk out of inodes, or a full directory block
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", no_inode_left)
    with pytest.raises(WriteError, match=r"could not write .*metrics\.json: No space left on device") as err:
        atomic_write_bytes(path, b"new")
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == b"old"


def test_writable_dir_creates_checks_and_names_the_option(tmp_path):
    from stgcn.atomic import writable_dir

    d = writable_dir(tmp_path / "a" / "b", what="--out")
    assert d.is_dir() and list(d.iterdir()) == []  # the probe file is gone
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(WriteError, match=rf"--out {f}: is a file, not a directory"):
        writable_dir(f, what="--out")
    with pytest.raises(WriteError, match=r"--json .*cannot write there") as err:
        writable_dir(f / "below", what="--json")  # a parent is a file
    assert err.value.errno is not None
    assert f.read_text() == "x"


def test_writable_file_refuses_a_directory_and_an_unwritable_folder(tmp_path, monkeypatch):
    from stgcn.atomic import writable_file

    assert writable_file(tmp_path / "new" / "x.mp4") == tmp_path / "new" / "x.mp4"
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "x.mp4").exists()
    with pytest.raises(WriteError, match="is a directory, not a file"):
        writable_file(tmp_path)

    def refused(*a, **k):  # a read-only folder, as a non-root user sees it
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refused)
    with pytest.raises(WriteError, match=r"--out .*cannot write there \(Permission denied\)"):
        writable_file(tmp_path / "y.json", what="--out")
