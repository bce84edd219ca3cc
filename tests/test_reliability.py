"""Faults and bad input not covered elsewhere (see docs/reliability.md for the full table).

Crashes and disk errors around checkpoints and stores, a full disk during train and eval (every
file of a run, then a resume), ``kill -9`` inside ``stgcn export`` / ``convert-official``, untrusted
code in checkpoints / pickles / YAML (through the API and through the CLI in a subprocess),
malformed label files, resource bounds
(checked in a subprocess under an address-space limit, so a reader that over-allocates fails with
MemoryError there instead of exhausting the shared machine), and the run lock under concurrency.

Tests marked ``xfail(strict=True)`` document real bugs in code owned elsewhere; each reason names
the file and line. When a bug is fixed the test XPASSes, fails as strict, and the mark must go.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import multiprocessing
import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import stgcn
from stgcn import atomic
from stgcn.checkpoint import atomic_write_bytes, load_model, save_model
from stgcn.data import load_sample, open_source
from stgcn.data.formats.arrays import read_npy, read_npz
from stgcn.data.formats.kinetics import read_kinetics
from stgcn.data.formats.openpose import read_openpose
from stgcn.data.prepare import prepare_source
from stgcn.data.store import open_store
from stgcn.errors import CheckpointError, ConfigError, DataError, LayoutError, WriteError
from test_prepare import FakeSource, fake_load

HERE = Path(__file__).resolve().parent


class _Evil:
    """Unpickling this runs ``touch MARKER``: the canary of every untrusted-code test."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rel") / "store"
    prepare_source(FakeSource(8, bad_every=0), out, workers=1, loader=fake_load, progress=False)
    return out


@pytest.fixture
def store_copy(store_dir, tmp_path) -> Path:
    d = tmp_path / "store"
    shutil.copytree(store_dir, d)
    return d


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    m = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3)
    save_model(path, m, {"class_names": ["a", "b", "c"], "layout": "kinect-v1"})
    return path


# ------------------------------------------------------------------ crash / disk: checkpoints


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


# ------------------------------------------------------------------ crash / disk: stores


def test_store_with_truncated_data_npy_is_refused(store_copy):
    data = store_copy / "data.npy"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    s = open_store(store_copy)  # the index is fine; the frames are mapped lazily
    with pytest.raises(DataError, match="data.npy") as info:
        s.get(0)
    assert str(store_copy) in str(info.value)


def test_store_whose_offsets_overrun_data_is_refused(store_copy):
    offsets = np.load(store_copy / "offsets.npy")
    offsets[-1] += 5
    np.save(store_copy / "offsets.npy", offsets)
    with pytest.raises(DataError, match=r"data\.npy has \d+ frames, offsets say \d+"):
        open_store(store_copy).get(0)


@pytest.mark.parametrize("name, content", [
    ("meta.json", b'{"format": "stgcn-store", '),
    ("names.json", b"\x00\xff"),
    ("labels.npy", b"not an npy file"),
])
def test_store_with_corrupt_index_file_is_refused(store_copy, name, content):
    (store_copy / name).write_bytes(content)
    with pytest.raises(DataError, match="cannot read the store's index files") as info:
        open_store(store_copy)
    assert str(store_copy) in str(info.value)


def test_store_with_missing_index_file_is_refused(store_copy):
    (store_copy / "names.json").unlink()
    with pytest.raises(DataError, match="names.json"):
        open_store(store_copy)


def _npy_with_damaged_header(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    raw = bytearray(buf.getvalue())
    raw[10:11] = b"'"  # one byte of the header dict becomes an unterminated string
    return bytes(raw)


def test_store_with_damaged_npy_header_is_refused(store_copy):
    (store_copy / "offsets.npy").write_bytes(_npy_with_damaged_header(np.load(store_copy / "offsets.npy")))
    with pytest.raises(DataError):
        open_store(store_copy)


def test_npy_with_damaged_header_is_a_data_error(tmp_path):
    p = tmp_path / "clip.npy"
    p.write_bytes(_npy_with_damaged_header(np.zeros((4, 20, 3), np.float32)))
    with pytest.raises(DataError):
        load_sample(p)


# ------------------------------------------------------------------ untrusted code


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"format": "stgcn", "version": 1, "model_config": {"name": "stgcn-tiny", "params": {}},
                "state_dict": _Evil(marker), "meta": {}}, path)
    return path


@pytest.mark.parametrize("verb", ["predict", "eval"])
def test_cli_refuses_checkpoint_with_pickled_callable(tmp_path, verb):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    np.save(tmp_path / "clip.npy", np.zeros((8, 20, 3), np.float32))
    args = {"predict": ["predict", str(tmp_path / "clip.npy"), "--checkpoint", str(evil)],
            "eval": ["eval", "--checkpoint", str(evil), "--data", str(tmp_path), "--split", "val"]}[verb]
    r = subprocess.run([sys.executable, "-m", "stgcn", *args], env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"stgcn {verb}: error: {evil}: refused to load")
    assert "Traceback" not in r.stderr
    assert not marker.exists()


def test_official_checkpoint_path_refuses_pickled_callable(tmp_path):
    from stgcn.inference.predictor import Predictor

    marker = tmp_path / "pwned"
    evil = tmp_path / "official.pt"
    torch.save({"fcn.weight": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        Predictor.from_checkpoint(evil, official=True)
    assert not marker.exists()


def test_resume_refuses_last_checkpoint_with_pickled_callable(store_dir, tmp_path):
    from stgcn.engine import train
    from test_train import tiny_config

    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"format": "stgcn-train-state", "model": _Evil(marker)}, out / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="refused"):
        train(tiny_config(store_dir, out, epochs=1, resume=True))
    assert not marker.exists()
    assert not (out / ".lock").exists()  # the lock is released on the error path


@pytest.mark.parametrize("where", ["recipe", "layout", "override", "prepare-option"])
def test_yaml_python_tags_are_refused(tmp_path, where):
    from stgcn.cli.prepare import parse_options
    from stgcn.engine.config import RunConfig, apply_overrides, load_recipe
    from stgcn.graph import get_layout

    marker = tmp_path / "pwned"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    f = tmp_path / "bad.yaml"
    if where == "recipe":
        f.write_text(f"optimizer:\n  lr: {tag}\n")
        with pytest.raises(ConfigError, match=r"bad\.yaml.*invalid YAML"):
            load_recipe(str(f))
    elif where == "layout":
        f.write_text(f"joints: {tag}\nedges: []\ncenter: 0\n")
        with pytest.raises(LayoutError, match=r"bad\.yaml.*not valid YAML"):
            get_layout(str(f))
    elif where == "override":
        with pytest.raises(ConfigError, match="optimizer.lr"):
            apply_overrides(RunConfig(), [f"optimizer.lr={tag}"])
    else:
        with pytest.raises(ConfigError, match="cannot parse"):
            parse_options([f"frames={tag}"])
    assert not marker.exists()


def test_npy_and_npz_with_pickled_objects_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.array([_Evil(marker), 1], dtype=object)
    np.save(tmp_path / "x.npy", arr, allow_pickle=True)
    np.savez(tmp_path / "x.npz", x=arr)
    with pytest.raises(DataError, match="x.npy"):
        read_npy(tmp_path / "x.npy")
    with pytest.raises(DataError, match="x.npz"):
        read_npz(tmp_path / "x.npz")
    with pytest.raises(DataError, match="x.npy"):
        load_sample(tmp_path / "x.npy")
    assert not marker.exists()


def test_store_index_with_pickled_objects_is_refused(store_copy, tmp_path):
    marker = tmp_path / "pwned"
    n = len(np.load(store_copy / "labels.npy"))
    np.save(store_copy / "labels.npy", np.array([_Evil(marker)] * n, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read the store's index files"):
        open_store(store_copy)
    assert not marker.exists()


def test_score_file_with_pickled_objects_is_refused(tmp_path):
    from stgcn.fusion import fuse

    marker = tmp_path / "pwned"
    good = tmp_path / "a.npz"
    np.savez(good, scores=np.eye(2), names=np.array(["x", "y"]), labels=np.arange(2))
    bad = tmp_path / "b.npz"
    np.savez(bad, scores=np.eye(2), names=np.array([_Evil(marker), "y"], dtype=object), labels=np.arange(2))
    with pytest.raises(DataError, match=r"b\.npz.*cannot read scores"):
        fuse([good, bad])
    assert not marker.exists()


def test_pyskl_pickle_through_load_sample_and_open_source_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"split": {}, "annotations": [{"frame_dir": "x", "keypoint": _Evil(marker)}]}))
    with pytest.raises(DataError, match="not allowed"):
        load_sample(p)
    with pytest.raises(DataError, match="not allowed"):
        open_source("pyskl", str(p))
    assert not marker.exists()


# ------------------------------------------------------------------ malformed input: label files, folders


def _kinetics_root(tmp_path: Path, labels: dict) -> Path:
    (tmp_path / "kinetics_train").mkdir()
    (tmp_path / "kinetics_train_label.json").write_text(json.dumps(labels))
    return tmp_path


@pytest.mark.parametrize("entry, match", [
    ({"label": "a", "label_index": 0}, "needs 'has_skeleton' and 'label_index'"),
    ({"has_skeleton": True, "label": "a", "label_index": "0"}, "label_index must be an integer"),
    ({"has_skeleton": True, "label": "a", "label_index": True}, "label_index must be an integer"),
    ("not a dict", "needs 'has_skeleton'"),
])
def test_kinetics_label_file_errors_name_file_and_clip(tmp_path, entry, match):
    root = _kinetics_root(tmp_path, {"ok1": {"has_skeleton": True, "label": "a", "label_index": 0},
                                     "clipXYZ": entry})
    with pytest.raises(DataError, match=match) as info:
        open_source("kinetics", str(root))
    assert info.value.file == str(root / "kinetics_train_label.json") and info.value.record == "clipXYZ"


def test_kinetics_label_file_conflicting_class_names(tmp_path):
    root = _kinetics_root(tmp_path, {"c1": {"has_skeleton": True, "label": "a", "label_index": 0},
                                     "c2": {"has_skeleton": True, "label": "b", "label_index": 0}})
    with pytest.raises(DataError, match="names both 'a' and 'b'") as info:
        open_source("kinetics", str(root))
    assert info.value.record == "c2" and "kinetics_train_label.json" in info.value.file


def test_kinetics_label_file_not_json(tmp_path):
    (tmp_path / "kinetics_val_label.json").write_text('{"c1": ')
    with pytest.raises(DataError, match="not valid JSON") as info:
        open_source("kinetics", str(tmp_path))
    assert info.value.file.endswith("kinetics_val_label.json")


@pytest.mark.parametrize("fmt", ["openpose", "arrays"])
def test_labels_csv_errors_name_file_and_line(tmp_path, fmt):
    labels = tmp_path / "labels.csv"
    labels.write_text("name,label,train\na,0,1\nb,1,maybe\n")
    with pytest.raises(DataError, match="must be 1/0 or true/false") as info:
        open_source(fmt, str(tmp_path))
    assert info.value.file == str(labels) and info.value.record == "line 3"


def test_labels_csv_missing_is_named(tmp_path):
    with pytest.raises(DataError, match="labels CSV not found") as info:
        open_source("openpose", str(tmp_path))
    assert info.value.file == str(tmp_path / "labels.csv")


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


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_numbers_are_rejected_with_their_record(tmp_path, literal):
    pose = ", ".join(["0.5"] * 35 + [literal])
    k = tmp_path / "k.json"
    score = ", ".join(["0.5"] * 18)
    k.write_text(f'{{"data": [{{"frame_index": 1, "skeleton": [{{"pose": [{pose}], "score": [{score}]}}]}}]}}')
    with pytest.raises(DataError, match="NaN or infinite") as info:
        read_kinetics(k)
    assert info.value.record.startswith("data[0].skeleton[0]")
    d = tmp_path / "op"
    d.mkdir()
    (d / "v_000000000000_keypoints.json").write_text(
        '{"people": [{"pose_keypoints_2d": [' + ", ".join(["1"] * 53 + [literal]) + ']}]}')
    with pytest.raises(DataError, match="NaN or infinite") as info:
        read_openpose(d)
    assert info.value.record == "frame 0, people[0]"


# ------------------------------------------------------------------ CLI error contract


def test_cli_main_turns_package_errors_into_exit_2(tmp_path, capsys):
    from stgcn.cli import main

    rc = main(["predict", str(tmp_path / "clip.npy"), "--checkpoint", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("stgcn predict: error: ") and "checkpoint not found" in err
    rc = main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--data", "d", "--split", "s", "--clips", "0"])
    assert rc == 2 and "stgcn eval: error: clips must be >= 1" in capsys.readouterr().err


def test_cli_main_turns_ctrl_c_into_exit_130(monkeypatch, capsys):
    from stgcn.cli import layouts as layouts_cli
    from stgcn.cli import main

    def interrupted(args):
        raise KeyboardInterrupt

    def register(sub):
        sub.add_parser("layouts").set_defaults(func=interrupted)

    monkeypatch.setattr(layouts_cli, "register", register)
    assert main(["layouts"]) == 130
    err = capsys.readouterr().err
    assert "stgcn layouts: interrupted" in err and "Traceback" not in err


# ------------------------------------------------------------------ resource bounds


def test_kinetics_frame_index_beyond_bound_is_rejected_before_allocating(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"data": [{"frame_index": 10**9, "skeleton": []}]}))
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"frame_index must be an integer in 1\.\.100000"):
        read_kinetics(p)
    assert time.perf_counter() - t0 < 1.0


def test_openpose_frame_numbers_beyond_bound_are_rejected_before_allocating(tmp_path):
    for f in (0, 10**9):
        (tmp_path / f"v_{f:012d}_keypoints.json").write_text('{"people": []}')
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="span more than"):
        read_openpose(tmp_path)
    assert time.perf_counter() - t0 < 1.0


_BOUNDED = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from stgcn.data import load_sample
    from stgcn.data.formats.kinetics import read_kinetics
    from stgcn.data.formats.openpose import read_openpose
    from stgcn.errors import StgcnError
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (LIMIT_MB << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        CALL
        print("RESULT ok")
    except StgcnError as exc:
        print("RESULT StgcnError", exc)
    except BaseException as exc:
        print("RESULT", type(exc).__name__, exc)
""")


def _bounded(call: str, path: Path, limit_mb: int = 512) -> str:
    """Run ``call`` (with ``p`` = path) in a fresh interpreter whose address space may grow by at most
    ``limit_mb``: a reader that sizes arrays from numbers in the file dies of MemoryError there."""
    code = _BOUNDED.replace("LIMIT_MB", str(limit_mb)).replace("CALL", f"p = Path({str(path)!r}); {call}")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, r.stderr[-2000:]
    return lines[-1]


def _npy_claiming(shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def test_bounded_helper_reports_package_errors(tmp_path):
    # the harness itself: a small bad file gives the package's error, not a MemoryError
    p = tmp_path / "a.npy"
    p.write_bytes(_npy_claiming((4, 20, 3)))
    assert _bounded("load_sample(p)", p).startswith("RESULT StgcnError")


def test_npy_header_claiming_huge_shape_is_rejected(tmp_path):
    p = tmp_path / "huge.npy"
    p.write_bytes(_npy_claiming((10**9, 25, 3)))  # 192 bytes claiming 280 GiB
    assert _bounded("load_sample(p)", p).startswith("RESULT StgcnError")


def test_npz_member_claiming_huge_shape_is_rejected(tmp_path):
    p = tmp_path / "huge.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.npy", _npy_claiming((10**9, 25, 3)))
    assert _bounded("load_sample(p)", p).startswith("RESULT StgcnError")


def test_kinetics_persons_times_frames_is_bounded(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"data": [{"frame_index": 100_000, "skeleton": [0] * 20_000}]}))
    assert _bounded("read_kinetics(p)", p).startswith("RESULT StgcnError")


def test_openpose_people_times_frame_span_is_bounded(tmp_path):
    people = json.dumps({"people": [{"pose_keypoints_2d": [0] * 54}] * 100})
    for f in (0, 999_999):
        (tmp_path / f"v_{f:012d}_keypoints.json").write_text(people)
    assert _bounded("read_openpose(p)", tmp_path).startswith("RESULT StgcnError")


# ------------------------------------------------------------------ concurrency: the run lock


def _contend(out: str, start, done, results) -> None:  # run in forked children
    from stgcn.engine.runlock import RunLock, RunLockedError

    lock = RunLock(Path(out))
    start.wait()
    try:
        lock.acquire()
        results.put("won")
    except RunLockedError:
        results.put("refused")
    done.wait()  # the winner holds the lock until everyone has tried
    lock.release()


@pytest.mark.parametrize("stale", [False, True], ids=["no-lock-file", "stale-lock-file"])
def test_simultaneous_starts_let_exactly_one_run_in(tmp_path, stale):
    # also the takeover race: several runs finding the lock file of a killed run at once
    if stale:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / ".lock").write_text(f"{socket.gethostname()}:999999999\n")
    ctx = multiprocessing.get_context("fork")
    n = 4
    start, done, results = ctx.Barrier(n), ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path / "run"), start, done, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(results.get(timeout=5) for _ in range(n)) == ["refused"] * (n - 1) + ["won"]


def test_lock_held_by_a_live_run_is_refused_whatever_its_file_says(tmp_path):
    from stgcn.engine.runlock import RunLock, RunLockedError

    out = tmp_path / "run"
    a = RunLock(out)
    a.acquire()
    try:
        (out / ".lock").write_text(f"{socket.gethostname()}:999999999\n")  # looks stale, but a holds the flock
        with pytest.raises(RunLockedError, match="in use"):
            RunLock(out).acquire()
    finally:
        a.release()
    b = RunLock(out)
    b.acquire()
    assert b.held
    b.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lock_of_a_killed_run_is_free_while_its_forked_children_live(tmp_path):
    # DataLoader workers are forked children: they must not keep a killed run's lock alive
    from stgcn.engine.runlock import RunLock, RunLockedError

    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from stgcn.engine.runlock import RunLock
        lock = RunLock(Path({str(out)!r}))
        lock.acquire()
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(RunLockedError):  # held while its owner lives
            RunLock(out).acquire()
        proc.kill()
        proc.wait(30)
        lock = RunLock(out)
        lock.acquire()  # the owner is dead; its child closed its copy of the lock at fork
        assert lock.held
        lock.release()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)


# ------------------------------------------------------------------ numeric: global float state


def test_importing_the_engine_leaves_float_semantics_alone():
    code = ("import numpy as np; import stgcn.engine; "
            "print(float(np.array([1e-310]) [0] * np.float64(1.0)) != 0.0)")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "True", r.stderr[-2000:]


def test_flush_to_zero_is_scoped_to_the_run_and_restored():
    from stgcn.runtime import flushes_denormals, flushing_denormals

    was = flushes_denormals()
    supported = torch.set_flush_denormal(True)  # False on CPUs without the flag: then nothing changes
    torch.set_flush_denormal(False)
    try:
        with flushing_denormals():
            assert flushes_denormals() == supported
            with flushing_denormals():
                pass
            assert flushes_denormals() == supported  # the inner block left it on
        assert not flushes_denormals()
        assert float(np.array([1e-310])[0] * np.float64(1.0)) != 0.0
    finally:
        torch.set_flush_denormal(was)


def test_gzip_bomb_is_refused_before_exhausting_memory(tmp_path):
    import gzip

    from stgcn.data.formats.kinect import read_text

    bomb = tmp_path / "a01_s01_e01_realworld.txt.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(b"0" * (4 * 1024 * 1024))  # 4 MiB of text in a few KB
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(DataError, match="decompresses to more than"):
        read_text(bomb, max_bytes=1024 * 1024)
    assert read_text(bomb, max_bytes=8 * 1024 * 1024).startswith("000")


# ------------------------------------------------------------------ disk: a full disk during train and eval


def _full_disk(monkeypatch, name: str) -> list[Path]:
    """Every atomic write of a file called ``name`` writes half of its bytes, then hits ENOSPC.

    The fault sits inside ``atomic_write``'s temporary file, as a real full disk would, so the test
    also sees what a half-written temporary file leaves behind. Returns the paths that failed.
    """
    real = atomic.atomic_write
    hits: list[Path] = []

    def faulty(path, write):
        if Path(path).name != name:
            return real(path, write)
        hits.append(Path(path))

        def half_then_enospc(f):
            buf = io.BytesIO()
            write(buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return real(path, half_then_enospc)

    monkeypatch.setattr(atomic, "atomic_write", faulty)
    return hits


def _temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


def _disk_cfg(store: Path, out: Path, epochs: int, resume: bool = False):
    from test_train import tiny_config

    # a step schedule (not cosine) so that growing the epochs of a finished run keeps its trajectory;
    # checkpoint_every leaves a mid-epoch last.pt to resume from
    c = tiny_config(store, out, epochs=epochs, resume=resume, checkpoint_every=2)
    c.scheduler.name = "step"
    c.scheduler.milestones = [1]
    return c


@pytest.fixture(scope="module")
def disk_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(store, a finished 2-epoch run, a finished 1-epoch run whose files are the 'previous versions')."""
    from stgcn.engine import train
    from test_train import make_store

    root = tmp_path_factory.mktemp("fulldisk")
    store = make_store(root / "store", n=48)
    train(_disk_cfg(store, root / "ref", 2))
    train(_disk_cfg(store, root / "one", 1))
    return store, root / "ref", root / "one"


def _without(text: str, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in json.loads(text).items() if k not in keys}


def _log_without_times(path: Path) -> list[list[str]]:
    rows = [ln.split(",") for ln in path.read_text().splitlines()]
    cols = [i for i, c in enumerate(rows[0]) if c not in ("time_s", "samples_per_s")]
    return [[r[i] for i in cols] for r in rows]


def _assert_same_as_uninterrupted(ref: Path, out: Path) -> None:
    a = torch.load(ref / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    # every file of the run is there and complete (timings aside)
    assert _log_without_times(out / "log.csv") == _log_without_times(ref / "log.csv")
    timing = ("train_time_s", "samples_per_s")
    assert _without((out / "metrics.json").read_text(), timing) == _without((ref / "metrics.json").read_text(), timing)
    for png in ("curves.png", "confusion.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "val_scores.npz", allow_pickle=False) as got, np.load(ref / "val_scores.npz") as want:
        assert np.array_equal(got["scores"], want["scores"])
    assert (out / "report.md").read_text().endswith("`config.yaml`\n")
    assert yaml_epochs(out / "config.yaml") == 2
    load_model(out / "checkpoints" / "best.pt")
    assert not _temp_files(out) and not (out / ".lock").exists()


def yaml_epochs(path: Path) -> int:
    import yaml

    return yaml.safe_load(path.read_text())["train"]["epochs"]


@pytest.mark.parametrize("name", ["config.yaml", "log.csv", "metrics.json", "val_scores.npz", "curves.png",
                                  "confusion.png", "report.md"])
def test_full_disk_during_train_keeps_previous_file_and_resume_finishes(disk_runs, tmp_path, monkeypatch, name):
    from stgcn.checkpoint import safe_load
    from stgcn.engine import train

    store, ref, one = disk_runs
    out = tmp_path / "run"
    shutil.copytree(one, out)  # a finished 1-epoch run, continued to 2 epochs
    before = (out / name).read_bytes()
    hits = _full_disk(monkeypatch, name)
    with pytest.raises(WriteError, match=rf"could not write {out / name}: No space left on device; the previous "
                                         r"file \(if any\) is unchanged") as err:
        train(_disk_cfg(store, out, 2, resume=True))
    assert err.value.errno == errno.ENOSPC and hits == [out / name]
    monkeypatch.undo()
    assert (out / name).read_bytes() == before  # the previous version, not half of the new one
    assert not _temp_files(out)
    assert not (out / ".lock").exists()
    assert safe_load(out / "checkpoints" / "last.pt")["epoch"] in (1, 2)  # still a valid resume point

    # space freed: the same command continues and ends where an uninterrupted run ends
    train(_disk_cfg(store, out, 2, resume=True))
    _assert_same_as_uninterrupted(ref, out)


def test_full_disk_on_best_checkpoint_during_train(disk_runs, tmp_path, monkeypatch):
    from stgcn.checkpoint import safe_load
    from stgcn.engine import train

    store, ref, _ = disk_runs
    out = tmp_path / "run"
    _full_disk(monkeypatch, "best.pt")  # first written at the end of epoch 1
    with pytest.raises(CheckpointError, match=r"best\.pt: No space left on device"):
        train(_disk_cfg(store, out, 2))
    monkeypatch.undo()
    assert not (out / "checkpoints" / "best.pt").exists()
    assert not _temp_files(out) and not (out / ".lock").exists()
    state = safe_load(out / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (0, 4)  # the last mid-epoch checkpoint before the failure

    train(_disk_cfg(store, out, 2, resume=True))
    _assert_same_as_uninterrupted(ref, out)
    a = safe_load(ref / "checkpoints" / "best.pt")["state_dict"]
    b = safe_load(out / "checkpoints" / "best.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_full_disk_through_the_train_cli_is_exit_2_naming_the_file(disk_runs, tmp_path, monkeypatch, capsys):
    from stgcn.cli import main

    store, _, _ = disk_runs
    _full_disk(monkeypatch, "config.yaml")  # the run's first file
    rc = main(["train", "--data", str(store), "--out", str(tmp_path / "run"), "--model", "stgcn-tiny",
               "--epochs", "1", "--set", "data.num_workers=0", "--set", "train.progress=false"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"stgcn train: error: could not write {tmp_path / 'run' / 'config.yaml'}: No space left")
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "config.yaml").exists() and not _temp_files(tmp_path)


@pytest.mark.parametrize("name", ["metrics.json", "scores.npz", "per_class.csv", "confusion.png", "report.md"])
def test_full_disk_while_writing_eval_outputs_keeps_previous_file(tmp_path, monkeypatch, name):
    from stgcn.engine.evaluate import summarize_scores, write_eval_outputs

    labels = np.arange(12) % 3

    def result(seed):
        scores = np.random.default_rng(seed).normal(size=(12, 3)).astype(np.float32)
        return summarize_scores(scores, labels, ["a", "b", "c"], [f"s{i}" for i in range(12)])

    write_eval_outputs(tmp_path, result(1), title="first")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _full_disk(monkeypatch, name)
    with pytest.raises(WriteError, match=rf"could not write {tmp_path / name}: No space left on device"):
        write_eval_outputs(tmp_path, result(2), title="second")
    monkeypatch.undo()
    assert (tmp_path / name).read_bytes() == before[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file
    write_eval_outputs(tmp_path, result(2), title="second")
    assert "second" in (tmp_path / "report.md").read_text()


def test_full_disk_during_onnx_export_is_a_write_error(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from stgcn.export.onnx import export_onnx

    model = stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3).eval()
    kw = dict(example_frames=16, check_frames=12, check_batch=2, timing_frames=8, repeat=1)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, **kw)
    before = path.read_bytes()
    # exported files get the usual permissions, not mkstemp's owner-only 0600
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(onnx, "save", full)
    with pytest.raises(WriteError, match=rf"could not write {path}: No space left on device"):
        export_onnx(model, path, **kw)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ crash: kill -9 during export / convert-official

# Runs `stgcn ARGS...` in a child that stops for good inside the rename of TARGET, after touching MARKER:
# the temporary file is complete, the target not yet replaced. The test then kills it with SIGKILL.
_STALL_IN_RENAME = textwrap.dedent("""
    import os, sys, time
    target, marker = os.path.abspath(sys.argv[1]), sys.argv[2]
    real_replace = os.replace
    def stalled(src, dst, *a, **k):
        if os.path.abspath(dst) == target:
            open(marker, "w").close()
            time.sleep(600)
        return real_replace(src, dst, *a, **k)
    os.replace = stalled
    from stgcn.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def _kill_inside_rename(target: Path, args: list[str]) -> None:
    marker = target.parent / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", _STALL_IN_RENAME, str(target), str(marker), *args],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), f"the command never reached the rename: {proc.stderr.read().decode()[-2000:]}"
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -9
    marker.unlink()


def _official_checkpoint(path: Path) -> Path:
    m = stgcn.create_model("stgcn-official", layout="ntu-rgb+d", num_classes=4)
    torch.save(m.state_dict(), path)
    return path


@pytest.mark.parametrize("previous", [True, False], ids=["over-previous", "new-file"])
def test_sigkill_during_convert_official_keeps_previous_file(tmp_path, previous):
    import re

    from stgcn.cli import main
    from stgcn.compat import load_official

    src = _official_checkpoint(tmp_path / "official.pth")
    dst = tmp_path / "out" / "converted.ckpt"
    dst.parent.mkdir()
    old = b""
    if previous:  # an earlier conversion, of another model
        tiny = stgcn.create_model("stgcn-tiny", layout="ntu-rgb+d", num_classes=4)
        save_model(dst, tiny, {"class_names": list("wxyz")})
        old = dst.read_bytes()
    args = ["convert-official", str(src), str(dst), "--layout", "ntu-rgb+d"]
    _kill_inside_rename(dst, args)

    assert dst.read_bytes() == old if previous else not dst.exists()
    left = [p.name for p in dst.parent.iterdir() if p != dst]
    # the killed process cannot remove its temporary file; it is hidden and recognisable as one
    assert len(left) == 1 and re.fullmatch(r"\.converted\.ckpt\..+\.tmp", left[0]), left

    assert main(args) == 0  # the re-run is not confused by the leftover
    model, meta = load_model(dst)
    assert model.config["name"] == "stgcn-official" and meta["class_names"] == ["0", "1", "2", "3"]
    x = torch.randn(1, 3, 20, 25, 2)
    torch.testing.assert_close(model(x), load_official(src, layout="ntu-rgb+d")(x))
    assert [p.name for p in dst.parent.iterdir() if p != dst] == left  # no new temporary file


@pytest.mark.parametrize("previous", [True, False], ids=["over-previous", "new-file"])
def test_sigkill_during_onnx_export_keeps_previous_file(tmp_path, previous):
    import re

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from stgcn.cli import main
    from stgcn.export.onnx import export_onnx

    ckpt = tmp_path / "m.pt"
    save_model(ckpt, stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=5).eval(),
               {"class_names": list("abcde"), "layout": "kinect-v1"})
    target = tmp_path / "out" / "model.onnx"
    target.parent.mkdir()
    old = b""
    if previous:  # an earlier export, of a 3-class model
        export_onnx(stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3).eval(), target,
                    example_frames=16, check_frames=12, check_batch=2, timing_frames=8, repeat=1)
        old = target.read_bytes()
    args = ["export", str(ckpt), "--onnx", str(target), "--frames", "8"]
    _kill_inside_rename(target, args)

    assert target.read_bytes() == old if previous else not target.exists()
    left = [p.name for p in target.parent.iterdir() if p != target]
    assert len(left) == 1 and re.fullmatch(r"\.model\.onnx\..+\.tmp", left[0]), left

    assert main(args) == 0
    proto = onnx.load(target)
    onnx.checker.check_model(proto)
    assert json.loads({e.key: e.value for e in proto.metadata_props}["class_names"]) == list("abcde")
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert sess.run(["logits"], {"skeleton": np.zeros((2, 3, 10, 20, 2), np.float32)})[0].shape == (2, 5)
    assert [p.name for p in target.parent.iterdir() if p != target] == left


# ------------------------------------------------------------------ disk: the temporary file cannot be created


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


@pytest.mark.parametrize("verb", ["convert-official", "export"])
def test_cli_writing_below_a_file_is_exit_2_not_a_traceback(tmp_path, capsys, verb):
    from stgcn.cli import main

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    if verb == "export":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        save_model(tmp_path / "m.pt", stgcn.create_model("stgcn-tiny", layout="kinect-v1", num_classes=3), {})
        args = ["export", str(tmp_path / "m.pt"), "--onnx", str(not_a_dir / "m.onnx"), "--frames", "8"]
    else:
        args = ["convert-official", str(_official_checkpoint(tmp_path / "o.pth")), str(not_a_dir / "c.pt"),
                "--layout", "ntu-rgb+d"]
    assert main(args) == 2  # used to escape as FileExistsError / NotADirectoryError
    assert capsys.readouterr().err.startswith(f"stgcn {verb}: error: could not write {not_a_dir}")
    assert not_a_dir.read_text() == "x"


def test_convert_official_with_unreadable_labels_file_is_exit_2(tmp_path, capsys):
    from stgcn.cli import main

    src = _official_checkpoint(tmp_path / "o.pth")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    for labels in ("missing.txt", "binary.txt"):
        args = ["convert-official", str(src), str(tmp_path / "c.pt"), "--layout", "ntu-rgb+d",
                "--labels", str(tmp_path / labels)]
        assert main(args) == 2  # used to be a FileNotFoundError / UnicodeDecodeError traceback
        assert capsys.readouterr().err.startswith(f"stgcn convert-official: error: --labels {tmp_path / labels}")
    assert not (tmp_path / "c.pt").exists()
