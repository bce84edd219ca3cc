"""The optimised paths (stgcn.models.fast and the training-path changes) against the plain einsum
formulation of the official math, in float64.

The plain forward below is written from shared/reference/README.md, not from the model code: 1×1
conv to K·C channels (bias before aggregation), one ``einsum('nkctv,kvw->nctw')`` with A ⊙ M, then
BN → ReLU → conv(Γ×1) → BN → (+ residual) → ReLU, data_bn over (V·C) channels, mean over persons.
"""

import pytest
import torch
import torch.nn.functional as F

import stgcn
from stgcn.models.fast import FastSTGCN, optimize_for_inference
from stgcn.nn.block import Dropout

CASES = [
    ("stgcn", "ntu-rgb+d", "spatial"),
    ("stgcn-official", "openpose", "spatial"),
    ("stgcn", "kinect-v1", "distance-star"),
    ("stgcn-official", "ntu-rgb+d", "distance"),
    ("local-conv", "openpose", "uniform"),
]


def randomize(model, seed=0):
    """Random weights with non-trivial BN statistics and edge importance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g, dtype=torch.float64) * 0.5)
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g, dtype=torch.float64))
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g, dtype=torch.float64))
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g, dtype=torch.float64) * 0.3)
        if model.edge_importance is not None:
            for p in model.edge_importance:
                p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64))


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
        if model.edge_importance is None and hasattr(gcn, "src"):  # local conv: its own sparse formula
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


def build(name, layout, strategy):
    model = stgcn.create_model(name, layout=layout, strategy=strategy, num_classes=5).double()
    randomize(model)
    return model.eval()


@pytest.mark.parametrize("name, layout, strategy", CASES)
@pytest.mark.parametrize("chunk_bytes", [0, 1])
def test_optimized_equals_plain_einsum_float64(name, layout, strategy, chunk_bytes):
    model = build(name, layout, strategy)
    v = model.layout.num_joints
    x = torch.randn(3, 3, 19, v, 2, dtype=torch.float64)
    fast = optimize_for_inference(model, chunk_bytes=chunk_bytes)
    assert isinstance(fast, FastSTGCN)
    with torch.no_grad():
        feat_ref, logits_ref = plain_forward(model, x)
        torch.testing.assert_close(fast(x), logits_ref, rtol=1e-10, atol=1e-10)
        feat, logits = fast.extract_features(x)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-10, atol=1e-10)
    nm, c, t, vv = feat_ref.shape
    assert feat.shape == (3, c, t, v, 2)  # per-joint features survive the optimisation
    torch.testing.assert_close(feat, feat_ref.view(3, 2, c, t, vv).permute(0, 2, 3, 4, 1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast.forward_features(x), feat_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, layout, strategy", CASES[:3])
def test_model_uses_fast_path_in_eval_no_grad_and_follows_weight_changes(name, layout, strategy):
    model = build(name, layout, strategy)
    v = model.layout.num_joints
    x = torch.randn(2, 3, 15, v, 2, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        assert model.__dict__.get("_fast_cache") is not None  # the fast path ran
        torch.testing.assert_close(out, plain_forward(model, x)[1], rtol=1e-10, atol=1e-10)
        feat, logits = model.extract_features(x)
        torch.testing.assert_close(logits, out, rtol=1e-10, atol=1e-10)
        assert feat.shape[:2] == (2, model.feature_dim) and feat.shape[3:] == (v, 2)
        # an in-place weight change (optimizer step, load_state_dict) invalidates the folded copy
        model.st_gcn_networks[1].tcn[2].weight.mul_(1.5)
        model.edge_importance[0].add_(0.25) if model.edge_importance is not None else None
        torch.testing.assert_close(model(x), plain_forward(model, x)[1], rtol=1e-10, atol=1e-10)
    with torch.inference_mode():
        got = model(x)
    with torch.no_grad():
        torch.testing.assert_close(got, plain_forward(model, x)[1], rtol=1e-10, atol=1e-10)
    # with gradients enabled the modules run (autograd reaches the parameters)
    model.zero_grad()
    model(x).sum().backward()
    assert model.fcn.weight.grad is not None and model.st_gcn_networks[0].gcn.conv.weight.grad is not None
    model.fast_inference = False
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain_forward(model, x)[1], rtol=1e-10, atol=1e-10)


def test_state_dict_unchanged_by_fast_path():
    model = build("stgcn-official", "openpose", "spatial")
    keys = list(model.state_dict())
    with torch.no_grad():
        model(torch.randn(1, 3, 9, 18, 2, dtype=torch.float64))
    assert list(model.state_dict()) == keys
    assert not any("fast" in k for k in keys)


@pytest.mark.parametrize("name, layout, strategy", CASES)
def test_training_path_equals_plain_float64(name, layout, strategy):
    """Train mode (batch statistics) without dropout: forward and every gradient as the plain math."""
    model = stgcn.create_model(name, layout=layout, strategy=strategy, num_classes=5, dropout=0.0).double()
    randomize(model)
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


def test_non_stgcn_models_pass_through():
    tcn = stgcn.create_model("tcn", layout="openpose", num_classes=3)
    assert optimize_for_inference(tcn) is tcn and not tcn.training
