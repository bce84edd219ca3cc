"""The command line (stgcn.cli): options derived from the typed config, the README's spellings, and
bad input answered with one line and exit 2, before any work, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import stgcn
from faults import child_env, evil_checkpoint, official_checkpoint
from stgcn.checkpoint import save_model
from stgcn.cli import main
from test_train import make_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("cli") / "store", n=24)


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory nobody can create files in (as root, chmod is not enough: try /sys)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    for cand in (d, Path("/sys/kernel")):
        try:
            fd, probe = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no unwritable directory on this machine")


def _err(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ options from the typed config


def test_print_config_shows_the_resolved_settings(store, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(store), "--recipe", "small", "--epochs", "3", "--train-split", "train",
              "--set", "optimizer.lr=1e-3", "--train.batch_size", "8", "--resume", "--print_config"])
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["recipe"] == "small" and cfg["optimizer"]["name"] == "adam"  # from the recipe
    assert cfg["optimizer"]["lr"] == 0.001  # 1e-3 is a number, not YAML's string
    assert cfg["train"]["epochs"] == 3 and cfg["train"]["batch_size"] == 8 and cfg["train"]["resume"] is True
    assert cfg["data"]["path"] == str(store) and cfg["data"]["train_split"] == "train"


def test_config_file_then_later_options(store, tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("optimizer: {lr: 0.5}\ntrain: {epochs: 9, seed: 4}\n")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(store), "--config", str(f), "--train.seed", "5", "--print_config"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["optimizer"]["lr"], cfg["train"]["epochs"], cfg["train"]["seed"]) == (0.5, 9, 5)


def test_help_comes_from_the_field_docstrings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--train.label_smoothing" in out and "Label smoothing of the cross-entropy" in out
    assert "--data = --data.path" in out  # the short spellings are listed


# ------------------------------------------------------------------ issue 12, item 5: no traceback


@pytest.mark.parametrize("verb", ["train", "ablation"])
def test_out_that_is_a_file_is_refused_before_training(store, tmp_path, capsys, verb):
    f = tmp_path / "afile"
    f.write_text("")
    extra = ["--seeds", "1", "--settings", "tcn"] if verb == "ablation" else []
    err = _err(capsys, [verb, "--data", str(store), "--epochs", "1", "--out", str(f), *extra])
    assert f"--out {f}: is a file, not a directory" in err


def test_eval_out_that_is_a_file_is_refused_before_the_evaluation(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("")
    # the checkpoint does not exist: the --out check comes first, before anything is loaded
    err = _err(capsys, ["eval", "--checkpoint", str(tmp_path / "no.pt"), "--data", "d", "--split", "s",
                        "--out", str(f)])
    assert "is a file, not a directory" in err


def test_unwritable_out_is_refused_before_training(store, tmp_path, capsys):
    ro = _unwritable_dir(tmp_path)
    err = _err(capsys, ["train", "--data", str(store), "--epochs", "1", "--out", str(ro / "run")])
    assert "--out" in err and "cannot write there" in err


def test_unwritable_demo_out_is_refused_before_the_video_is_read(tmp_path, capsys):
    pytest.importorskip("cv2")
    ro = _unwritable_dir(tmp_path)
    # the checkpoint does not exist either: the output check comes first
    err = _err(capsys, ["demo", "--checkpoint", str(tmp_path / "no.pt"), "--out", str(ro / "x.mp4")])
    assert "--out" in err and "cannot write there" in err


def test_recipe_kwargs_for_another_model_are_named(store, tmp_path, capsys):
    err = _err(capsys, ["train", "--data", str(store), "--model", "stgcn-tiny", "--recipe", "small",
                        "--epochs", "1", "--out", str(tmp_path / "r")])
    assert "model 'stgcn-tiny' cannot be built with model.kwargs" in err and "recipe 'small'" in err


@pytest.mark.parametrize("item, match", [("train.seed=-1", "train.seed: must be in"),
                                         ("model.dropout=1.5", "model.dropout: must be in [0, 1)"),
                                         ("optimizer.lrr=1", "unknown key 'optimizer.lrr'")])
def test_bad_settings_are_named(store, tmp_path, capsys, item, match):
    err = _err(capsys, ["train", "--data", str(store), "--set", item, "--out", str(tmp_path / "r")])
    assert match in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_named(store, tmp_path, capsys):
    err = _err(capsys, ["train", "--data", str(store), "--device", "cuda", "--out", str(tmp_path / "r")])
    assert "device 'cuda'" in err and "--device cpu" in err


@pytest.mark.parametrize("verb", ["predict", "demo"])
@pytest.mark.parametrize("topk", ["0", "-3"])
def test_topk_below_one_is_refused(tmp_path, capsys, verb, topk):
    argv = [verb, *(["x.npy"] if verb == "predict" else []), "--checkpoint", "c.pt", "--topk", topk]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"--topk: must be >= 1, found {topk}" in capsys.readouterr().err


def test_random_bytes_as_a_checkpoint_is_not_a_checkpoint(tmp_path, capsys):
    import random

    ck = tmp_path / "rand.pt"
    data = random.Random(0).randbytes(5000)
    assert data[:1] != b"\x80" and data[:2] != b"PK"
    ck.write_bytes(data)
    err = _err(capsys, ["eval", "--checkpoint", str(ck), "--data", "d", "--split", "s"])
    assert "not a checkpoint" in err and "weights_only" not in err


@pytest.mark.parametrize("verb", ["predict", "eval"])
def test_cli_refuses_checkpoint_with_pickled_callable(tmp_path, verb):
    marker = tmp_path / "pwned"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    np.save(tmp_path / "clip.npy", np.zeros((8, 20, 3), np.float32))
    args = {"predict": ["predict", str(tmp_path / "clip.npy"), "--checkpoint", str(evil)],
            "eval": ["eval", "--checkpoint", str(evil), "--data", str(tmp_path), "--split", "val"]}[verb]
    r = subprocess.run([sys.executable, "-m", "stgcn", *args], env=child_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"stgcn {verb}: error: {evil}: refused to load")
    assert "Traceback" not in r.stderr
    assert not marker.exists()


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
        args = ["convert-official", str(official_checkpoint(tmp_path / "o.pth")), str(not_a_dir / "c.pt"),
                "--layout", "ntu-rgb+d"]
    assert main(args) == 2  # used to escape as FileExistsError / NotADirectoryError
    err = capsys.readouterr().err  # refused before the work, by the output check
    assert err.startswith(f"stgcn {verb}: error: ") and f"{not_a_dir}: is a file, not a directory" in err
    assert not_a_dir.read_text() == "x"


def test_convert_official_with_unreadable_labels_file_is_exit_2(tmp_path, capsys):
    from stgcn.cli import main

    src = official_checkpoint(tmp_path / "o.pth")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    for labels in ("missing.txt", "binary.txt"):
        args = ["convert-official", str(src), str(tmp_path / "c.pt"), "--layout", "ntu-rgb+d",
                "--labels", str(tmp_path / labels)]
        assert main(args) == 2  # used to be a FileNotFoundError / UnicodeDecodeError traceback
        assert capsys.readouterr().err.startswith(f"stgcn convert-official: error: --labels {tmp_path / labels}")
    assert not (tmp_path / "c.pt").exists()
