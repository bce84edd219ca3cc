"""The fused inference form (``model.fuse()`` / ``optimize_for_inference``) and the training path
against a plain formulation of the official math, in float64 (and float32 for the fused form).

The plain forward below is written from the official code (yysijie/st-gcn ``net/st_gcn.py``,
``net/utils/tgcn.py``), not from the model code: 1×1 conv to K·C channels (bias before aggregation),
one ``einsum('nkctv,kvw->nctw')`` with A ⊙ M, then BN → ReLU → conv(Γ×1) → BN → (+ residual) → ReLU,
data_bn over (V·C) channels, mean over persons.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import stgcn
from stgcn.models import optimize_for_inference
from stgcn.nn import FusedGraphConv
from stgcn.nn.block import Dropout

STRATEGIES = ["uniform", "distance", "distance-star", "spatial"]
# every graph model x strategy x edge importance on a small layout, plus the NTU layout
CASES = [(name, "openpose", s, imp) for name in ("stgcn", "stgcn-official", "stgcn-tiny")
         for s in STRATEGIES for imp in (True, False)]
CASES += [("stgcn", "ntu-rgb+d", "spatial", True), ("stgcn-official", "kinect-v1", "distance-star", True),
          ("local-conv", "openpose", None, None), ("local-conv", "kinect-v1", None, None)]


def randomize(model, seed=0):
    """Random weights with non-trivial BN statistics and edge importance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                dt = mod.running_mean.dtype
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g, dtype=dt) * 0.5)
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g, dtype=dt))
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g, dtype=dt))
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g, dtype=dt) * 0.3)
        for p in getattr(model, "edge_importance", None) or []:
            p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=p.dtype))


def _bn(x, bn, training):
    return F.batch_norm(x, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias,
                        training, 0.0, bn.eps)


def plain_forward(model, x, training=False):
    """(features (N·M, C', T', V), logits) by the plain official formulation, reading the parameters."""
    n, c, t, v, m = x.shape
    h = _bn(x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t), model.data_bn, training)
    h = h.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for i, block in enumerate(model.st_gcn_networks):
        gcn = block.gcn
        if block.residual is not None:
            res = _bn(block.residual[0](h), block.residual[1], training)
        else:
            res = h if block.has_residual else 0
        if hasattr(gcn, "src"):  # local conv: its own sparse formula (tested in test_models.py)
            y = gcn(h)
        else:
            w, b = gcn.effective_weight()
            A = model.A * model.edge_importance[i] if model.edge_importance is not None else model.A
            k = A.shape[0]
            y = F.conv2d(h, w, b)
            y = torch.einsum("nkctv,kvw->nctw", y.view(y.shape[0], k, -1, y.shape[2], y.shape[3]), A)
        y = F.relu(_bn(y, block.tcn[0], training))
        conv = block.tcn[2]
        y = _bn(F.conv2d(y, conv.weight, conv.bias, conv.stride, conv.padding), block.tcn[3], training)
        h = F.relu(y + res)
    pooled = h.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)
    logits = pooled @ model.fcn.weight[:, :, 0, 0].t() + model.fcn.bias
    return h, logits


def build(name, layout, strategy, importance, dtype=torch.float64, **kw):
    if strategy is not None:
        kw.update(strategy=strategy, edge_importance=importance)
    model = stgcn.create_model(name, layout=layout, num_classes=5, **kw).to(dtype)
    randomize(model)
    return model.eval()


@pytest.mark.parametrize("name, layout, strategy, importance", CASES)
def test_fused_equals_plain_einsum_float64(name, layout, strategy, importance):
    model = build(name, layout, strategy, importance)
    v = model.layout.num_joints
    x = torch.randn(2, 3, 13, v, 2, dtype=torch.float64)
    fused = optimize_for_inference(model)
    assert type(fused) is type(model) and fused.fused and not model.fused
    with torch.no_grad():
        feat_ref, logits_ref = plain_forward(model, x)
        torch.testing.assert_close(model(x), logits_ref, rtol=1e-10, atol=1e-10)  # unfused eval path too
        torch.testing.assert_close(fused(x), logits_ref, rtol=1e-10, atol=1e-10)
        feat, logits = fused.extract_features(x)
        torch.testing.assert_close(fused.forward_features(x), feat_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-10, atol=1e-10)
    nm, c, t, vv = feat_ref.shape
    assert feat.shape == (2, c, t, v, 2)  # per-joint features survive the fusion
    torch.testing.assert_close(feat, feat_ref.view(2, 2, c, t, vv).permute(0, 2, 3, 4, 1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, layout, strategy, importance", [CASES[0], CASES[9], CASES[-1]])
def test_fused_equals_plain_float32(name, layout, strategy, importance):
    model = build(name, layout, strategy, importance, dtype=torch.float32)
    x = torch.randn(2, 3, 24, model.layout.num_joints, 2)
    with torch.no_grad():
        feat_ref, logits_ref = plain_forward(model, x)
        feat, logits = optimize_for_inference(model).extract_features(x)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feat.permute(0, 4, 1, 2, 3).flatten(0, 1), feat_ref, rtol=1e-5, atol=1e-5)


def test_fused_units_replace_the_plain_ones_and_the_graph_leaves_the_model():
    model = build("stgcn-official", "openpose", "spatial", True)
    keys = list(model.state_dict())
    fused = optimize_for_inference(model)
    assert list(model.state_dict()) == keys  # the source model is untouched
    assert fused.A is None and fused.edge_importance is None and fused.graph_matrices() == [None] * 10
    assert all(isinstance(b.gcn, FusedGraphConv) for b in fused.st_gcn_networks)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.Dropout)
                   for m in fused.st_gcn_networks.modules())  # every norm folded, dropout gone
    assert [b.gcn.aggregate_first for b in fused.st_gcn_networks] == [True] + [False] * 3 + [True] + [False] * 2 \
        + [True] + [False] * 2  # widening blocks aggregate first
    assert not any(p.requires_grad for p in fused.parameters())
    assert fused.fuse() is fused  # idempotent
    with pytest.raises(ValueError, match="holds its own graph"):
        fused.st_gcn_networks[1].gcn(torch.randn(1, 64, 3, 18, dtype=torch.float64), model.A)


def test_fused_model_follows_device_and_dtype_casts():
    """A fused model is a plain module: casting it (the route to reduced precision) keeps it correct."""
    model = build("stgcn-tiny", "kinect-v1", "spatial", True)
    x = torch.randn(2, 3, 15, 20, 1, dtype=torch.float64)
    with torch.no_grad():
        ref = plain_forward(model, x)[1]
        got = optimize_for_inference(model).float()(x.float())
    torch.testing.assert_close(got, ref.float(), rtol=1e-5, atol=1e-5)


def test_fused_model_runs_under_inference_mode_and_is_exact_after_weight_changes():
    model = build("stgcn", "kinect-v1", "distance", True)
    x = torch.randn(2, 3, 15, 20, 2, dtype=torch.float64)
    with torch.no_grad():  # a weight change after fusing does not reach the copy: fuse again
        model.st_gcn_networks[1].tcn[2].weight.mul_(1.5)
        model.edge_importance[0].add_(0.25)
    with torch.inference_mode():
        got = optimize_for_inference(model)(x)
    with torch.no_grad():
        torch.testing.assert_close(got, plain_forward(model, x)[1], rtol=1e-10, atol=1e-10)


def test_tcn_fused_equals_unfused():
    model = build("tcn", "openpose", None, None)
    x = torch.randn(3, 3, 17, 18, 2, dtype=torch.float64)
    fused = optimize_for_inference(model)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.blocks.modules())
    with torch.no_grad():
        ref_f, ref_l = model.extract_features(x)
        f, logits = fused.extract_features(x)
    torch.testing.assert_close(logits, ref_l, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f, ref_f, rtol=1e-10, atol=1e-10)


def test_modules_without_fuse_come_back_as_an_eval_copy():
    lin = torch.nn.Linear(3, 2)
    out = optimize_for_inference(lin)
    assert out is not lin and not out.training and lin.training and not out.weight.requires_grad


@pytest.mark.parametrize("name, layout, strategy, importance", [c for c in CASES if c[3] is not False][::3])
def test_training_path_equals_plain_float64(name, layout, strategy, importance):
    """Train mode (batch statistics) without dropout: forward and every gradient as the plain math."""
    model = build(name, layout, strategy, importance, dropout=0.0)
    model.train()
    v = model.layout.num_joints
    x = torch.randn(3, 3, 17, v, 2, dtype=torch.float64)
    y = torch.tensor([0, 3, 4])
    out = model(x)
    F.cross_entropy(out, y).backward()
    ours = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    _, ref = plain_forward(model, x, training=True)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    F.cross_entropy(ref, y).backward()
    for k, p in model.named_parameters():
        torch.testing.assert_close(ours[k], p.grad, rtol=1e-9, atol=1e-10, msg=k)


def test_dropout_keeps_distribution_and_gradient():
    d = Dropout(0.5, inplace=True).train()
    x = torch.randn(200, 500, dtype=torch.float64, requires_grad=True)
    y = d(x.clone())
    kept = y != 0
    assert 0.47 < kept.double().mean().item() < 0.53
    torch.testing.assert_close(y[kept], 2 * x[kept])
    y.sum().backward()
    torch.testing.assert_close(x.grad, 2 * kept.double())
    assert torch.equal(d.eval()(x), x)


def test_fusing_a_copy_leaves_the_training_model_trainable():
    model = build("stgcn-tiny", "openpose", "spatial", True, dtype=torch.float32)
    before = copy.deepcopy(model.state_dict())
    optimize_for_inference(model.train())
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
