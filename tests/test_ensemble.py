"""SoftmaxEnsemble and seed-ensemble run directories: the members' mean softmax in one forward,
checked against each member run on its own; mismatched or incomplete runs refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stgcn.checkpoint import save_model
from stgcn.errors import CheckpointError
from stgcn.inference.predictor import Predictor
from stgcn.models import create_model, optimize_for_inference
from stgcn.models.ensemble import MEMBER_CHECKPOINT, SoftmaxEnsemble, ensemble_members, load_seed_ensemble

NAMES = ["walk", "wave", "clap"]


def _member(seed: int, classes=NAMES) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("stgcn-tiny", layout="kinect-v1", num_classes=len(classes)).eval()


def _run_dir(tmp_path, k=3, classes=None, data=None):
    for i in range(k):
        meta = {"class_names": (classes or {}).get(i, NAMES), "layout": "kinect-v1",
                "data": {"seed": 1000 * i, **((data or {}).get(i, {}))}}
        path = tmp_path / f"m{i}" / MEMBER_CHECKPOINT
        path.parent.mkdir(parents=True)
        save_model(path, _member(i, meta["class_names"]), meta)
    return tmp_path


def _mean_softmax(models, x):
    with torch.no_grad():
        p = np.stack([torch.softmax(m(x).double(), -1).numpy() for m in models])
    return p.mean(0)


def test_forward_is_the_log_of_the_members_mean_softmax():
    members = [_member(s) for s in range(3)]
    x = torch.randn(4, 3, 20, 20, 2)
    with torch.no_grad():
        out = SoftmaxEnsemble(members)(x)
    assert np.allclose(torch.softmax(out.double(), -1).numpy(), _mean_softmax(members, x), atol=1e-6)
    assert np.allclose(torch.exp(out).sum(-1).numpy(), 1, atol=1e-5)  # already log-probabilities


def test_a_class_every_member_rules_out_stays_finite():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, -200.0], [0.0, -300.0]])

    out = SoftmaxEnsemble([Fixed(), Fixed()])(torch.zeros(1))
    assert torch.isfinite(out).all() and out[0, 1] == pytest.approx(-200.0, abs=1e-4)


def test_fused_and_bf16_ensembles_keep_the_mean_and_the_members_untouched():
    members = [_member(s) for s in range(2)]
    ens = SoftmaxEnsemble(members).eval()
    x = torch.randn(2, 3, 20, 20, 2)
    fused = optimize_for_inference(ens)
    with torch.no_grad():
        assert np.allclose(torch.softmax(fused(x).double(), -1).numpy(), _mean_softmax(members, x), atol=1e-5)
        assert not getattr(members[0], "fused", False)  # a copy was fused
        assert fused.num_classes == len(NAMES)  # member 0 answers for the architecture
        bf16 = optimize_for_inference(ens, "bf16")
        out = bf16(x)
    # bfloat16 keeps 8 bits of mantissa: probabilities to a few hundredths (fp32 when the CPU lacks it)
    assert out.dtype == torch.float32
    assert np.allclose(torch.softmax(out.double(), -1).numpy(), _mean_softmax(members, x), atol=0.03)


def test_predictor_on_a_run_directory_averages_its_members(tmp_path):
    run = _run_dir(tmp_path)
    clip = np.random.default_rng(0).normal(size=(3, 30, 20, 1)).astype(np.float32)
    ens = Predictor.from_checkpoint(run)
    each = [Predictor.from_checkpoint(p).probabilities(clip) for p in ensemble_members(run)]
    assert np.allclose(ens.probabilities(clip), np.mean(each, 0), atol=1e-5)
    assert ens.meta["ensemble"]["members"] == [str(p) for p in ensemble_members(run)]
    assert [n for n, _ in ens(clip, topk=3)] == [NAMES[i] for i in np.argsort(-np.mean(each, 0))]
    # the live path (demo, camera, web app) batches prepared windows through extract_features
    probs, feat = ens.run_prepared([ens.prepare(clip)])
    assert np.allclose(probs[0], np.mean(each, 0), atol=1e-5) and feat.shape[0] == 1


def test_cli_predict_takes_a_run_directory(tmp_path, capsys):
    from stgcn.cli import main

    run = _run_dir(tmp_path / "run", k=2)
    clip = tmp_path / "clip.npy"
    np.save(clip, np.random.default_rng(1).normal(size=(30, 20, 3)).astype(np.float32))

    def printed(checkpoint) -> dict[str, float]:
        assert main(["predict", str(clip), "--checkpoint", str(checkpoint), "--topk", "3"]) == 0
        rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
        return {label: float(p) for label, p in rows}

    ens, each = printed(run), [printed(p) for p in ensemble_members(run)]
    assert set(ens) == set(NAMES)
    assert all(ens[n] == pytest.approx((each[0][n] + each[1][n]) / 2, abs=2e-4) for n in NAMES)


def test_incomplete_or_mismatched_runs_are_refused_by_name(tmp_path):
    with pytest.raises(CheckpointError, match="no m0/, m1/"):
        ensemble_members(tmp_path)
    (tmp_path / "joint").mkdir()
    with pytest.raises(CheckpointError, match="stgcn fuse"):
        ensemble_members(tmp_path)
    run = _run_dir(tmp_path / "a", k=2)
    (run / "m2").mkdir()  # a member whose training has not finished
    with pytest.raises(CheckpointError, match="m2 has no final checkpoint"):
        ensemble_members(run)
    with pytest.raises(CheckpointError, match="class names differ"):
        load_seed_ensemble(_run_dir(tmp_path / "b", k=2, classes={1: ["x", "y", "z"]}))
    with pytest.raises(CheckpointError, match="data contract"):
        load_seed_ensemble(_run_dir(tmp_path / "c", k=2, data={1: {"stream": "bone"}}))
    with pytest.raises(CheckpointError, match="at least 2 members"):
        SoftmaxEnsemble([_member(0)])
