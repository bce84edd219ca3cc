"""The causal temporal head (stgcn.models.temporal_head) and its training (stgcn.engine.temporal_head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stgcn.engine.temporal_head import IGNORE, HeadTraining, augment, fit_head, loss, targets, typical_lengths
from stgcn.errors import CheckpointError, ConfigError, ShapeError
from stgcn.models.temporal_head import HeadConfig, HeadStream, TemporalHead


def _head(k=3, layers=4, seed=0, members=1) -> TemporalHead:
    """A head with random weights (a fresh one's output layer is zero: the identity)."""
    torch.manual_seed(seed)
    head = TemporalHead(HeadConfig(tuple(4.0 + i for i in range(k)), channels=8, layers=layers,
                                   members=members)).eval()
    with torch.no_grad():
        head.out.weight.normal_(std=0.5)
        head.out.bias.normal_(std=0.5)
    return head


def _probs(t=60, k=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=t)


def test_outputs_up_to_t_do_not_change_when_later_frames_do():
    head, p = _head(), _probs()
    q = p.copy()
    q[31:] = _probs(len(p) - 31, seed=1)          # every step after t = 30 replaced
    a, b = head.probabilities(p), head.probabilities(q)
    np.testing.assert_array_equal(a[:31], b[:31])
    assert np.abs(a[31:] - b[31:]).max() > 1e-3    # ... and the later outputs do depend on them


@pytest.mark.parametrize("members", [1, 3])
def test_step_by_step_stream_equals_the_whole_sequence(members):
    """HeadStream (numpy, one cached input per tap, dense block-diagonal weights) is an independent
    formulation of the torch forward (padded dilated grouped convolutions); after reset it starts
    the same way again."""
    head, p = _head(layers=5, members=members), _probs(80)
    stream = HeadStream(head)
    first = np.stack([stream.step(x) for x in p])
    np.testing.assert_allclose(first, head.probabilities(p), atol=1e-12)
    stream.reset()
    np.testing.assert_allclose(np.stack([stream.step(x) for x in p[:20]]), first[:20], atol=1e-12)


def test_a_fresh_head_passes_the_windows_through_and_the_skip_is_the_log():
    """Logits = log(window probabilities) + the stack's output: zero for a fresh head, and with
    only the output bias set, the softmax of log p + bias."""
    p = _probs(20)
    np.testing.assert_allclose(TemporalHead(HeadConfig((4.0, 5.0, 6.0))).probabilities(p), p, atol=1e-12)
    head = TemporalHead(HeadConfig((4.0, 5.0, 6.0)))
    with torch.no_grad():
        head.out.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    z = p * np.exp([1.0, 0.0, -1.0])
    np.testing.assert_allclose(head.probabilities(p), z / z.sum(axis=1, keepdims=True), atol=1e-12)


def _member(head: TemporalHead, g: int) -> TemporalHead:
    """Member ``g`` of an ensemble head as a head of its own (its slices of every weight)."""
    c, k = head.config.channels, head.config.num_classes
    one = TemporalHead(HeadConfig(head.config.evidence, c, head.config.layers, members=1)).eval()
    mine = {k_: v[g * c:(g + 1) * c] for k_, v in head.state_dict().items() if not k_.startswith("out.")}
    mine |= {k_: v[g * k:(g + 1) * k] for k_, v in head.state_dict().items() if k_.startswith("out.")}
    one.load_state_dict(mine)
    return one


def test_an_ensemble_head_is_the_geometric_mean_of_its_members():
    head, p = _head(members=3), _probs(50)
    logp = np.mean([np.log(_member(head, g).probabilities(p)) for g in range(3)], axis=0)
    z = np.exp(logp)
    np.testing.assert_allclose(head.probabilities(p), z / z.sum(axis=1, keepdims=True), atol=1e-12)
    assert np.abs(_member(head, 0).probabilities(p) - _member(head, 1).probabilities(p)).max() > 1e-2
    x = torch.from_numpy(p.T[None].astype(np.float32))
    members = head.member_logits(x)
    np.testing.assert_allclose(members[:, 1].detach().numpy(), _member(head, 1)(x).detach().numpy(), atol=1e-5)
    y = torch.from_numpy(np.r_[[IGNORE] * 3, np.arange(47) % 3][None])
    expected = np.mean([loss(members[:, g], y, 0.15).item() for g in range(3)])   # equal step counts
    assert loss(members, y, 0.15).item() == pytest.approx(expected, rel=1e-6)
    own = torch.from_numpy(np.stack([_probs(50, seed=s).T for s in (1, 2, 3)])[None].astype(np.float32))
    apart = head.member_logits(own)                    # one stream per member: each reads its own
    for g in range(3):
        np.testing.assert_allclose(apart[:, g].detach().numpy(), _member(head, g)(own[:, g]).detach().numpy(),
                                   atol=1e-5)
    other = torch.where(y == IGNORE, y, (y + 1) % 3)             # same steps labelled, other labels
    ys = torch.stack([y, other, y], dim=1)                       # (N, members, T): a target per member
    expected = np.mean([loss(apart[:, g], ys[:, g], 0.15).item() for g in range(3)])
    assert loss(apart, ys, 0.15).item() == pytest.approx(expected, rel=1e-6)


def test_members_train_apart_and_the_ensemble_scores_like_them():
    """Each member's gradient reaches its own weights only; a trained 3-member head is at least
    about as good as its members on unseen streams."""
    head = _head(members=2)
    head.member_logits(torch.from_numpy(_probs(30).T[None].astype(np.float32)))[:, 0].sum().backward()
    grad = head.layers[2].conv.weight.grad
    assert grad[:8].abs().sum() > 0 and grad[8:].abs().sum() == 0
    rng = np.random.default_rng(0)
    train = [_context_stream(rng) for _ in range(12)]
    test = [_context_stream(rng) for _ in range(6)]
    trained = fit_head([p for p, _ in train], [y for _, y in train], 0,
                       HeadTraining(channels=8, layers=5, epochs=150, lr=1e-2, members=3))
    assert trained.config.members == 3

    def acc(h):
        return np.mean([(h.probabilities(p).argmax(1) == y).mean() for p, y in test])
    assert acc(trained) >= min(acc(_member(trained, g)) for g in range(3)) - 1e-9


def test_seen_so_far_is_the_capped_running_sum_over_the_class_length():
    """With every weight but one "seen so far" input's zero, the output is a known function of
    min(1, sum of p so far / length)."""
    head = TemporalHead(HeadConfig((4.0, 9.0), channels=4, layers=1))
    with torch.no_grad():
        for prm in head.parameters():
            prm.zero_()
        head.inp.weight[0, 2, 0] = 1.0   # channel 0 <- "seen so far" of class 0 (inputs: probs, then these)
        head.out.weight[0, 0, 0] = 1.0   # logit of class 0 += channel 0
    p = np.tile([[0.5, 0.5]], (8, 1))    # seen so far: 0.5 (t + 1) / 4, capped at 1
    seen = np.minimum(0.5 * np.arange(1, 9) / 4.0, 1.0)
    expected = 1.0 / (1.0 + np.exp(-seen))                     # softmax of (log .5 + seen, log .5)
    np.testing.assert_allclose(head.probabilities(p)[:, 0], expected, atol=1e-12)
    stream = HeadStream(head)
    np.testing.assert_allclose([stream.step(x)[0] for x in p], expected, atol=1e-12)


def test_meta_round_trip_and_bad_meta():
    head, p = _head(), _probs()
    again = TemporalHead.from_meta(head.to_meta())
    np.testing.assert_array_equal(again.probabilities(p), head.probabilities(p))
    older = head.to_meta()                  # saved before heads had members: one
    del older["config"]["members"]
    np.testing.assert_array_equal(TemporalHead.from_meta(older).probabilities(p), head.probabilities(p))
    doc = head.to_meta()
    doc["state_dict"].pop("out.bias")
    with pytest.raises(CheckpointError, match="not a temporal head"):
        TemporalHead.from_meta(doc)
    with pytest.raises(CheckpointError, match="unknown settings"):
        TemporalHead.from_meta({**head.to_meta(), "config": {**head.to_meta()["config"], "size": 3}})
    with pytest.raises(ConfigError, match="channels must be >= 1"):
        HeadConfig((3.0,), channels=0)
    with pytest.raises(ConfigError, match="members must be >= 1"):
        HeadTraining(members=0)
    with pytest.raises(ConfigError, match="evidence lengths must be > 0"):
        HeadConfig((3.0, 0.0))
    with pytest.raises(ShapeError, match=r"expected \(T, 3\)"):
        head.probabilities(np.ones((5, 4)))
    with pytest.raises(ShapeError, match="expected 3 probabilities"):
        HeadStream(head).step(np.ones(2))


def test_targets_are_the_labels_offset_steps_back():
    np.testing.assert_array_equal(targets(np.arange(5), 2), [IGNORE, IGNORE, 0, 1, 2])
    np.testing.assert_array_equal(targets(np.arange(3), 0), [0, 1, 2])
    assert typical_lengths([np.array([0, 0, 1, 0, 0, 0, 1])], 3) == (2.5, 1.0, 1.5)  # class 2: median of all


def test_augmentation_resamples_labels_with_their_steps_and_keeps_distributions():
    rng = np.random.default_rng(0)
    p, y = _probs(40), np.arange(40)
    q, z = augment(p, y, HeadTraining(speed=0.5, temperature=0.5), rng)
    assert 40 / 1.5 - 1 <= len(q) <= 40 * 1.5 + 1 and len(q) == len(z) and len(q) != 40
    assert np.all(np.diff(z) >= 0) and z[0] == 0            # in order, from the start
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    order = np.argsort(p[z], axis=1)                         # tempering keeps each step's ranking
    np.testing.assert_array_equal(np.argsort(q, axis=1), order)
    same, lab = augment(p, y, HeadTraining(speed=0.0, temperature=0.0), rng)
    assert same is p and lab is y


def _context_stream(rng, t=60):
    """Class 0 looks the same early and late; only the stretch before class 1 is labelled 0 (like
    UTKinect's first walk), the one after it is "no action" (class 2)."""
    probs = np.tile([0.05, 0.05, 0.9], (t, 1))
    labels = np.full(t, 2)
    a, b, c = sorted(rng.choice(np.arange(5, t - 12), size=3, replace=False))
    probs[a - 5:a], labels[a - 5:a] = (0.9, 0.05, 0.05), 0
    probs[b:b + 4], labels[b:b + 4] = (0.05, 0.9, 0.05), 1
    late = max(c, b + 5)
    probs[late:late + 5] = (0.9, 0.05, 0.05)          # the late look-alike, labelled no action
    return probs, labels


def test_a_trained_head_learns_what_came_before():
    rng = np.random.default_rng(0)
    train = [_context_stream(rng) for _ in range(12)]
    test = [_context_stream(rng) for _ in range(6)]
    head = fit_head([p for p, _ in train], [y for _, y in train], 0,
                    HeadTraining(channels=8, layers=5, epochs=300, dropout=0.0, lr=1e-2, speed=0.0, temperature=0.0))
    window = np.mean([(p.argmax(1) == y).mean() for p, y in test])     # per-step argmax alone
    refined = np.mean([(head.probabilities(p).argmax(1) == y).mean() for p, y in test])
    assert 0.85 < window < 0.95 and refined > 0.98   # the windows miss exactly the late look-alikes
