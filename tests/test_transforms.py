"""Transforms against plain per-frame / per-joint formulations written here, shapes, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stgcn.data import transforms as T
from stgcn.errors import ConfigError, ShapeError
from stgcn.graph import get_layout

NTU = get_layout("ntu-rgb+d")


def clip(t=20, v=25, m=2, c=3, seed=0, zero_tail=0):
    x = np.random.default_rng(seed).normal(size=(c, t, v, m)).astype(np.float32)
    if zero_tail:
        x[:, t - zero_tail:] = 0
    return x


def rot2(deg, s):
    a = math.radians(deg)
    return np.array([[math.cos(a) * s, -math.sin(a) * s], [math.sin(a) * s, math.cos(a) * s]])


def test_random_move_equals_official_per_frame_loop():
    t = T.RandomMove(move_time_candidate=[1, 2, 3])
    for seed in range(6):
        x = clip(t=37, seed=seed)
        p = t.sample(37, np.random.default_rng(seed))
        node, n = p["node"], len(p["node"])
        a, s, tx, ty = (np.zeros(37) for _ in range(4))
        for i in range(n - 1):  # official: np.linspace per segment
            seg = slice(node[i], node[i + 1])
            a[seg] = np.linspace(p["A"][i], p["A"][i + 1], node[i + 1] - node[i])
            s[seg] = np.linspace(p["S"][i], p["S"][i + 1], node[i + 1] - node[i])
            tx[seg] = np.linspace(p["TX"][i], p["TX"][i + 1], node[i + 1] - node[i])
            ty[seg] = np.linspace(p["TY"][i], p["TY"][i + 1], node[i + 1] - node[i])
        ref = x.astype(np.float64)
        for f in range(37):
            xy = rot2(a[f], s[f]) @ ref[0:2, f].reshape(2, -1)
            ref[0, f] = (xy[0] + tx[f]).reshape(25, 2)
            ref[1, f] = (xy[1] + ty[f]).reshape(25, 2)
        np.testing.assert_allclose(t.apply(x, p), ref, atol=1e-5)
        np.testing.assert_array_equal(t(x, np.random.default_rng(seed)), t.apply(x, p))


def test_paper_random_move_interpolates_first_to_last_frame():
    t = T.PaperRandomMove(skip_missing=True)
    x = clip(t=9, c=3)
    x[:2, 4, 7, 0] = 0
    p = t.sample(9, np.random.default_rng(3))
    out = t.apply(x, p)
    for f in range(9):
        w = f / 8
        k = {key: v[0] * (1 - w) + v[1] * w for key, v in p.items()}
        xy = rot2(k["angle"], k["scale"]) @ x[:2, f].reshape(2, -1) + np.array([[k["tx"]], [k["ty"]]])
        xy = xy.reshape(2, 25, 2)
        if f == 4:
            xy[:, 7, 0] = 0
        np.testing.assert_allclose(out[:2, f], xy, atol=1e-5)
    np.testing.assert_array_equal(out[2], x[2])  # the third channel (score or z) is not touched


def test_random_fragment_train_and_test():
    x = clip(t=30)
    out = T.RandomFragment(10)(x, np.random.default_rng(1))
    begin = int(np.random.default_rng(1).integers(0, 21))
    np.testing.assert_array_equal(out, x[:, begin:begin + 10])
    assert T.RandomFragment(10, test_mode=True)(x, np.random.default_rng(1)) is x
    assert T.RandomFragment(50)(x, np.random.default_rng(1)).shape[1] == 30


def test_random_choose_auto_pading_random_shift_pad_to():
    x = clip(t=12)
    out = T.RandomChoose(5)(x, np.random.default_rng(2))
    b = int(np.random.default_rng(2).integers(0, 8))
    np.testing.assert_array_equal(out, x[:, b:b + 5])
    out = T.RandomChoose(20)(x, np.random.default_rng(2))
    b = int(np.random.default_rng(2).integers(0, 9))
    assert out.shape[1] == 20 and not out[:, :b].any() and not out[:, b + 12:].any()
    np.testing.assert_array_equal(out[:, b:b + 12], x)
    assert T.RandomChoose(20, auto_pad=False)(x, None) is x
    np.testing.assert_array_equal(T.AutoPading(15)(x, None)[:, :12], x)

    y = np.zeros((3, 20, 25, 2), np.float32)
    y[:, 5:11] = x[:, :6]
    out = T.RandomShift()(y, np.random.default_rng(4))
    bias = int(np.random.default_rng(4).integers(0, 15))
    ref = np.zeros_like(y)
    for f in range(6):
        ref[:, bias + f] = y[:, 5 + f]
    np.testing.assert_array_equal(out, ref)

    loop = T.PadTo(30)(x, None)
    for f in range(30):
        np.testing.assert_array_equal(loop[:, f], x[:, f % 12])
    zero = T.PadTo(30, mode="zero")(x, None)
    assert not zero[:, 12:].any() and np.array_equal(zero[:, :12], x)
    assert T.PadTo(8)(x, None).shape[1] == 8


def pyskl_uniform_indices(t, clip_len, num_clips, test_mode, rs):
    """UniformSampleFrames written out plainly (pyskl sampling.py)."""
    inds_all = []
    for i in range(num_clips):
        n = int(rs.rand() * 0 + 1.0 * t)
        off = rs.randint(t - n + 1)
        if n < clip_len:
            start = (i if n < num_clips else i * n // num_clips) if test_mode else rs.randint(0, n)
            inds = list(range(start, start + clip_len))
        elif n < 2 * clip_len:
            chosen = set(rs.choice(clip_len + 1, n - clip_len, replace=False).tolist())
            inds, extra = [], 0
            for k in range(clip_len):
                if k in chosen:
                    extra += 1
                inds.append(k + extra)
        else:
            bids = [k * n // clip_len for k in range(clip_len + 1)]
            inds = [bids[k] + rs.randint(bids[k + 1] - bids[k]) for k in range(clip_len)]
        inds_all += [(j + off) % t for j in inds]
    return np.array(inds_all)


@pytest.mark.parametrize("t", [7, 25, 64, 300])
def test_uniform_sample_matches_pyskl_in_test_mode(t):
    us = T.UniformSample(20, num_clips=3, test_mode=True)
    ref = pyskl_uniform_indices(t, 20, 3, True, np.random.RandomState(255))
    np.testing.assert_array_equal(us.indices(t, np.random.default_rng(9)), ref)
    x = clip(t=t, v=4)
    out = us(x, np.random.default_rng(0))
    assert out.shape == (3, 3, 20, 4, 2)
    np.testing.assert_array_equal(out[1], x[:, ref[20:40]])


@pytest.mark.parametrize("t", [7, 25, 64])
def test_uniform_sample_train_segments(t):
    us = T.UniformSample(20)
    inds = us.indices(t, np.random.default_rng(5))
    assert inds.shape == (20,) and inds.min() >= 0 and inds.max() < t
    if t >= 40:  # one frame from each of the 20 equal segments
        bids = np.arange(21) * t // 20
        assert np.all((inds >= bids[:-1]) & (inds < bids[1:]))
    elif t >= 20:
        assert np.all(np.diff(inds) >= 1) and len(set(inds.tolist())) == 20
    assert us(clip(t=t), np.random.default_rng(5)).shape == (3, 20, 25, 2)


def plain_rotation(axis, theta):
    """Rodrigues' formula for a rotation by theta about axis, applied as R^T (pyskl's sense)."""
    if np.abs(axis).sum() < 1e-6 or abs(theta) < 1e-6:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    r = np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx
    return r  # rotates vectors about k by theta


def test_pre_normalize_aligns_spine_and_shoulders():
    x = clip(t=10, m=2, seed=7)
    x[:, :3, :, 0] = 0  # person 0 missing in 3 frames -> person 1 is the main person
    x[:, 8, :, 1] = 0  # ...and frame 8 is dropped
    x[:, 5, 3, 1] = 0  # a missing joint stays 0
    out = T.PreNormalize()(x, None)
    assert out.shape == (3, 9, 25, 2)
    keep = [f for f in range(10) if f != 8]
    main = x[:, keep][..., [1, 0]].astype(np.float64)
    origin = main[:, 0, 1, 0].copy()
    ref = np.zeros_like(main)
    for f in range(9):
        for m in range(2):
            for v in range(25):
                if main[:, f, v, m].any():
                    ref[:, f, v, m] = main[:, f, v, m] - origin
    for j0, j1, target in ((0, 1, [0, 0, 1.0]), (8, 4, [1.0, 0, 0])):
        bone = ref[:, 0, j1, 0] - ref[:, 0, j0, 0]
        axis = np.cross(bone, target)
        theta = math.acos(np.clip(bone @ target / np.linalg.norm(bone), -1, 1))
        r = plain_rotation(axis, theta)
        for f in range(9):
            for m in range(2):
                ref[:, f, :, m] = r @ ref[:, f, :, m]
    np.testing.assert_allclose(out, ref, atol=1e-4)
    shoulder = out[:, 0, 4, 0] - out[:, 0, 8, 0]
    np.testing.assert_allclose(shoulder / np.linalg.norm(shoulder), [1, 0, 0], atol=1e-5)
    assert not out[:, 5, 3, 0].any()
    with pytest.raises(ShapeError):
        T.PreNormalize()(clip(c=2), None)


def test_pre_normalize_looks_up_joints_by_name():
    p = T.PreNormalize(layout=get_layout("msr-action3d"))
    names = get_layout("msr-action3d").joint_names
    assert names[p.center_joint] == "spine"
    assert [names[i] for i in p.zaxis] == ["hip_center", "spine"]
    assert [names[i] for i in p.xaxis] == ["right_shoulder", "left_shoulder"]
    with pytest.raises(ConfigError, match="pass center_joint"):
        T.PreNormalize(layout=get_layout("coco"))


def test_center_constant_and_joint():
    x = clip(t=6, c=3)
    x[:, 2, 5, 1] = 0
    out = T.Center(value=0.5, channels=["x", "y", "score"])(x, None)
    for f in range(6):
        for v in range(25):
            for m in range(2):
                if f == 2 and v == 5 and m == 1:
                    assert not out[:, f, v, m].any()
                else:
                    np.testing.assert_allclose(out[:2, f, v, m], x[:2, f, v, m] - 0.5, atol=1e-6)
                    assert out[2, f, v, m] == x[2, f, v, m]
    x[:, 0, :, 0] = 0  # person 0 appears in frame 1
    out = T.Center(layout=NTU)(x, None)
    np.testing.assert_allclose(out[:, 3, 7, 1], x[:, 3, 7, 1] - x[:, 1, NTU.center, 0], atol=1e-6)
    stacked = T.Center(layout=NTU)(np.stack([x, x]), None)
    np.testing.assert_array_equal(stacked[1], out)


@pytest.mark.parametrize("kind", T.Stream.KINDS)
@pytest.mark.parametrize("channels", [None, ["x", "y", "score"]])
def test_streams_equal_plain_loops(kind, channels):
    x = clip(t=8, c=3)
    out = T.Stream(kind, layout=NTU, channels=channels)(x, None)
    nc = 2 if channels else 3
    ref = x.astype(np.float64).copy()
    if "bone" in kind:
        for v in range(25):
            ref[:nc, :, v] = x[:nc, :, v] - x[:nc, :, NTU.parents[v]]
    if "motion" in kind:
        src = ref.copy()
        for f in range(8):
            ref[:nc, f] = src[:nc, f + 1] - src[:nc, f] if f < 7 else 0
    np.testing.assert_allclose(out, ref, atol=1e-5)
    if channels:
        np.testing.assert_array_equal(out[2], x[2])
    assert out.dtype == np.float32


def test_build_pipeline_and_determinism():
    specs = [{"name": "random_choose", "size": 12}, {"name": "random_move", "move_time_candidate": [1, 2]},
             {"name": "pad_to", "length": 16}, {"name": "stream", "kind": "bone"}]
    pipe = T.build_pipeline(specs, layout="ntu-rgb+d", channels=["x", "y", "z"])
    assert len(pipe) == 4
    x = clip(t=30)
    a, b = pipe(x.copy(), np.random.default_rng(11)), pipe(x.copy(), np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 16, 25, 2) and a.dtype == np.float32
    assert not np.array_equal(a, pipe(x.copy(), np.random.default_rng(12)))
    np.testing.assert_array_equal(x, clip(t=30))  # input untouched
    with pytest.raises(ConfigError, match=r"unknown transform 'flip'; valid: \[.*'uniform_sample'"):
        T.build_pipeline([{"name": "flip"}])
    with pytest.raises(ConfigError, match=r"unknown arguments \['lenght'\]; valid: \['length', 'mode'\]"):
        T.build_pipeline([{"name": "pad_to", "lenght": 3}])
    with pytest.raises(ConfigError, match="needs the layout"):
        T.build_pipeline([{"name": "stream", "kind": "bone"}])
    with pytest.raises(ConfigError, match="unknown kind"):
        T.build_pipeline([{"name": "stream", "kind": "bones"}], layout=NTU)
    with pytest.raises(ShapeError):
        T.PadTo(3)(np.zeros((3, 4)), None)


def test_pre_normalize_defaults_are_ntu_joints_found_by_name():
    default, ntu = T.PreNormalize(), T.PreNormalize(layout=get_layout("ntu-rgb+d"))
    for p in (default, ntu):  # pyskl's PreNormalize3D constants: 1; 0 -> 1; 8 -> 4
        assert (p.center_joint, p.zaxis, p.xaxis) == (1, [0, 1], [8, 4])


def _per_joint(x, a, nc):
    """x' = A x for every joint of every frame and person, by loops."""
    out = x.copy()
    for t in range(x.shape[1]):
        for v in range(x.shape[2]):
            for m in range(x.shape[3]):
                out[:nc, t, v, m] = a[:nc, :nc] @ x[:nc, t, v, m]
    return out


def test_random_rotate_is_scipy_euler_xyz_per_joint():
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    t = T.RandomRotate(angle=[10, 20, 30])
    x = clip(t=6, v=5, m=2, zero_tail=2)
    draw = np.random.default_rng(3).uniform(-np.deg2rad([10, 20, 30]), np.deg2rad([10, 20, 30]))
    a = t.sample(np.random.default_rng(3))
    # extrinsic x, then y, then z: the matrix Rz Ry Rx
    np.testing.assert_allclose(a, rotation.from_euler("xyz", draw).as_matrix(), atol=1e-12)
    out = t(x, np.random.default_rng(3))
    np.testing.assert_allclose(out, _per_joint(x, a, 3), atol=1e-5)
    assert not out[:, 4:].any()  # missing (zero) frames stay zero
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), np.linalg.norm(x, axis=0), atol=1e-5)
    angles = [rotation.from_matrix(T.RandomRotate(5.0).sample(np.random.default_rng(s))).as_euler("xyz", degrees=True)
              for s in range(50)]
    assert np.abs(angles).max() <= 5.0 + 1e-9 and np.abs(angles).max() > 4.0
    with pytest.raises(ConfigError, match="3 numbers"):
        T.RandomRotate(angle=[1, 2])


def test_random_scale_and_shear_draws_and_per_joint_map():
    x = clip(t=5, v=4, m=1)
    for t, check in ((T.RandomScale(0.2), lambda a: np.allclose(a, np.diag(np.diag(a)))
                      and (np.abs(np.diag(a) - 1) <= 0.2).all()),
                     (T.RandomShear(0.3), lambda a: np.allclose(np.diag(a), 1)
                      and (np.abs(a - np.eye(3)) <= 0.3).all() and (a != np.eye(3)).sum() == 6)):
        a = t.sample(np.random.default_rng(5))
        assert check(a)
        np.testing.assert_allclose(t(x, np.random.default_rng(5)), _per_joint(x, a, 3), atol=1e-5)


def test_random_linear_on_2d_keeps_the_score_channel():
    x = clip(t=4, v=3, m=1)
    t = T.build_pipeline([{"name": "random_rotate", "angle": 40}], channels=["x", "y", "score"]).transforms[0]
    a = t.sample(np.random.default_rng(1))
    out = t(x, np.random.default_rng(1))
    np.testing.assert_allclose(out, _per_joint(x, a, 2), atol=1e-5)
    np.testing.assert_array_equal(out[2], x[2])


def test_resample_is_np_interp_of_every_joint():
    x = clip(t=9, v=4, m=2)
    out = T.Resample(20, test_mode=True)(x)
    grid = np.linspace(0, 8, 20)
    ref = np.apply_along_axis(lambda s: np.interp(grid, np.arange(9), s), 1, x)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(out[:, [0, -1]], x[:, [0, -1]])  # first and last frame kept
    # training: a random crop of 50-100 % of the frames, then the same interpolation over it
    t = T.Resample(12, p_interval=[0.5, 1.0])
    pos = t.positions(9, np.random.default_rng(4))
    span = pos[-1] - pos[0] + 1
    assert 0.5 * 9 - 1 <= span <= 9 and pos[0] >= 0 and pos[-1] <= 8 and np.allclose(np.diff(pos), np.diff(pos)[0])
    ref = np.apply_along_axis(lambda s: np.interp(pos, np.arange(9), s), 1, x)
    np.testing.assert_allclose(t(x, np.random.default_rng(4)), ref, atol=1e-5)
    assert T.Resample(5, test_mode=True)(x[:, :1]).shape == (3, 5, 4, 2)  # a 1-frame clip is repeated
    with pytest.raises(ConfigError, match="p_interval"):
        T.Resample(8, p_interval=[0.0, 1.0])


def test_concat_streams_stacks_the_single_streams():
    x = clip(t=7)
    t = T.build_pipeline([{"name": "concat_streams", "kinds": ["joint", "bone", "joint-motion"]}], layout=NTU)
    out = t(x, np.random.default_rng(0))
    ref = [T.Stream(k, layout=NTU)(x) for k in ("joint", "bone", "joint-motion")]
    np.testing.assert_array_equal(out, np.concatenate(ref, axis=0))
    assert out.shape == (9, 7, 25, 2)
    with pytest.raises(ConfigError, match="needs the layout"):
        T.ConcatStreams(["bone"])


def test_center_per_frame_subtracts_each_frames_centre_joint():
    x = clip(t=6, v=4, m=2)
    x[:, :, 3, 1] = 0  # a missing joint of person 1
    out = T.Center(joint=1, per_frame=True)(x)
    for t in range(6):
        for m in range(2):
            for v in range(4):
                want = 0 if (v, m) == (3, 1) else x[:, t, v, m] - x[:, t, 1, 0]
                np.testing.assert_allclose(out[:, t, v, m], want, atol=1e-6)
