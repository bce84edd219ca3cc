"""prepare: streaming into chunks, rejects, resume after SIGKILL, atomic replacement, CLI."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from stgcn.data import prepare as prep
from stgcn.data.sample import Sample
from stgcn.data.store import open_store
from stgcn.errors import DataError, StgcnError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class FakeItem:
    name: str
    path: str
    label: int | None
    splits: tuple[str, ...]
    fmt: str = "fake"
    options: dict = field(default_factory=dict, hash=False, compare=False)


def fake_sample(name: str, label: int | None = None) -> Sample:
    """Deterministic clip for a name: 4-11 frames, 1-2 persons, 25 joints, 2D + score."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = 4 + zlib.crc32(name.encode()) % 8
    m = 1 + zlib.crc32(name.encode()[::-1]) % 2
    return Sample(keypoint=rng.normal(size=(m, t, 25, 2)).astype(np.float32),
                  score=rng.random((m, t, 25)).astype(np.float32), label=label, name=name)


def fake_load(item: FakeItem) -> Sample:
    delay = float(os.environ.get("STGCN_TEST_LOAD_DELAY", "0"))
    if delay:
        time.sleep(delay)
    if item.name.startswith("bad"):
        raise DataError("truncated joint line", file=item.path, record="line 7")
    if item.name.startswith("wide"):
        return Sample(keypoint=np.zeros((1, 3, 18, 2), np.float32), score=np.ones((1, 3, 18), np.float32),
                      label=item.label, name=item.name)
    return fake_sample(item.name, item.label)


class FakeSource:
    def __init__(self, n: int = 30, bad_every: int = 10):
        self.name = "fake"
        self.layout = "ntu-rgb+d"
        self.class_names = ["a", "b", "c"]
        self.split_names = ["train", "val"]
        self.rejects = [("/raw/unlisted.txt", "not a skeleton file")]
        self.meta = {"origin": "test"}
        self.items = [FakeItem(f"bad{i}" if bad_every and i % bad_every == 3 else f"clip{i}", f"/raw/clip{i}",
                               i % 3, ("train",) if i % 4 else ("val",)) for i in range(n)]


def run_prepare(out, n=30, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return prep.prepare_source(FakeSource(n), out, loader=fake_load, source_info={"format": "fake"}, **kw)


def test_store_holds_every_good_clip_and_lists_rejects(tmp_path):
    rep = run_prepare(tmp_path / "s", chunk_size=4)
    src = FakeSource()
    good = [it for it in src.items if not it.name.startswith("bad")]
    assert rep.clips == len(good) and rep.rejected == 3 + 1
    assert rep.summary() == f"prepared {len(good)} clips, rejected 4 (see {tmp_path / 's' / 'rejects.csv'})"
    s = open_store(tmp_path / "s")
    assert s.names == [it.name for it in good]
    assert s.channels == ["x", "y", "score"] and s.layout == "ntu-rgb+d" and s.class_names == ["a", "b", "c"]
    m = max(fake_sample(it.name).num_persons for it in good)
    for i, it in enumerate(good):
        ref = fake_sample(it.name).to_array()
        x = s.get(i)
        assert x.dtype == np.float32 and x.shape == ref.shape[:3] + (m,)
        np.testing.assert_array_equal(x[..., :ref.shape[3]], ref)
        assert not x[..., ref.shape[3]:].any()  # person padding is zeros
        assert s.labels[i] == it.label
    assert [s.names[j] for j in s.split("val")] == [it.name for it in good if it.splits == ("val",)]
    rows = (tmp_path / "s" / "rejects.csv").read_text().splitlines()
    assert rows[0] == "file,record,reason" and rows[1] == "/raw/unlisted.txt,,not a skeleton file"
    assert "/raw/clip3,line 7,truncated joint line" in rows
    assert not (tmp_path / "s" / ".partial").exists()


def test_workers_give_the_same_store_and_max_persons(tmp_path):
    run_prepare(tmp_path / "a", chunk_size=5)
    run_prepare(tmp_path / "b", chunk_size=3, workers=2)
    assert (tmp_path / "a" / "data.npy").read_bytes() == (tmp_path / "b" / "data.npy").read_bytes()
    run_prepare(tmp_path / "c", max_persons=1)
    c = open_store(tmp_path / "c")
    assert c.shape[2] == 1 and c.meta["preprocessing"]["max_persons"] == 1
    np.testing.assert_array_equal(c.get(0)[..., 0], open_store(tmp_path / "a").get(0)[..., 0])


def test_inconsistent_joint_count_is_rejected_not_fatal(tmp_path):
    src = FakeSource(6, bad_every=0)
    src.items[2] = FakeItem("wide2", "/raw/wide2", 0, ("train",))
    rep = prep.prepare_source(src, tmp_path / "s", workers=1, loader=fake_load, progress=False)
    assert rep.clips == 5
    assert "has 18 joints, the dataset's layout has 25" in (tmp_path / "s" / "rejects.csv").read_text()


def test_no_usable_clip_is_an_error_and_no_store(tmp_path):
    src = FakeSource(3)
    src.items = [FakeItem("bad0", "/raw/b", 0, ())]
    with pytest.raises(DataError, match="no usable clip"):
        prep.prepare_source(src, tmp_path / "s", workers=1, loader=fake_load, progress=False)
    assert not (tmp_path / "s" / "COMPLETE").exists()


def _kill_target(out: str) -> None:  # run in a subprocess by the resume test
    run_prepare(out, n=60, chunk_size=4, workers=2)


def test_resume_after_sigkill_equals_clean_run(tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, STGCN_TEST_LOAD_DELAY="0.03", PYTHONPATH=f"{HERE}{os.pathsep}"
               + os.environ.get("PYTHONPATH", ""))
    code = f"import test_prepare as t; t._kill_target({str(out)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    journal = out / ".partial" / "journal.jsonl"
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 3:
                break
            assert proc.poll() is None, "prepare finished before it could be killed"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the pool's workers too
        proc.wait()
    assert not (out / "COMPLETE").exists()
    with pytest.raises(DataError, match="resume"):
        open_store(out)
    done = len([ln for ln in journal.read_text().splitlines() if ln.strip()])
    rep = run_prepare(out, n=60, chunk_size=4, workers=2)
    assert rep.reused_chunks >= 3 and rep.processed <= 60 - 4 * rep.reused_chunks < 60
    assert rep.reused_chunks >= done - 1  # a journal line cut by the kill is the only loss
    run_prepare(tmp_path / "clean", n=60, chunk_size=4)
    for f in ("data.npy", "offsets.npy", "labels.npy", "names.json", "splits.json", "rejects.csv"):
        assert (out / f).read_bytes() == (tmp_path / "clean" / f).read_bytes(), f


def test_changed_job_does_not_reuse_the_journal(tmp_path):
    out = tmp_path / "s"
    run_prepare(out, n=12, chunk_size=4)
    (out / ".partial").mkdir()
    (out / ".partial" / "plan.json").write_text(json.dumps({"fingerprint": "other"}))
    rep = run_prepare(out, n=12, chunk_size=4)
    assert rep.reused_chunks == 0 and rep.processed == 12


@pytest.mark.parametrize("where", ["chunk", "finalize"])
def test_failing_write_keeps_previous_store(tmp_path, monkeypatch, where):
    out = tmp_path / "s"
    run_prepare(out, n=12)
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "chunk":
        real_replace = os.replace
        monkeypatch.setattr(prep.os, "replace", lambda a, b: enospc() if ".bin" in str(a) else real_replace(a, b))
    else:
        monkeypatch.setattr(prep, "_write_npy_header", enospc)
    with pytest.raises(prep.PrepareError) as info:
        run_prepare(out, n=20)
    msg = str(info.value)
    assert "No space left on device" in msg and "intact" in msg and "run the same command again" in msg
    assert isinstance(info.value, StgcnError) and info.value.errno == errno.ENOSPC
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before
    assert len(open_store(out)) == len(open_store(out).names) == 11
    monkeypatch.undo()
    rep = run_prepare(out, n=20)
    assert len(open_store(out)) == rep.clips == 18


def test_cli_prepare_passes_reader_options(tmp_path, monkeypatch, capsys):
    from stgcn.cli import main

    seen = {}

    def open_source(fmt, path=None, **options):
        seen.update(fmt=fmt, path=path, options=options)
        return FakeSource(8)

    fake = types.ModuleType("stgcn.data.sources")
    fake.open_source, fake.load_item = open_source, fake_load
    monkeypatch.setitem(sys.modules, "stgcn.data.sources", fake)
    rc = main(["prepare", "fake", str(tmp_path / "raw"), "--out", str(tmp_path / "s"), "--workers", "1",
               "--set", "frames=300", "--set", "joints=[1, 2]", "--no-progress"])
    assert rc == 0
    assert seen == {"fmt": "fake", "path": str(tmp_path / "raw"), "options": {"frames": 300, "joints": [1, 2]}}
    assert f"prepared 7 clips, rejected 2 (see {tmp_path / 's' / 'rejects.csv'})" in capsys.readouterr().out
    assert main(["prepare", "fake", "--out", str(tmp_path / "t"), "--set", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_yaml_python_tags_in_a_prepare_option_are_refused(tmp_path):
    from stgcn.cli.prepare import parse_options
    from stgcn.errors import ConfigError

    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_options([f'frames=!!python/object/apply:os.system ["touch {marker}"]'])
    assert not marker.exists()
