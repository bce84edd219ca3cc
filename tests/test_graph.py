import json

import numpy as np
import pytest

from stgcn.errors import LayoutError
from stgcn.graph import Graph, get_layout, gravity_distances, list_layouts


@pytest.fixture(scope="module")
def reference(shared):
    return json.loads((shared / "reference" / "graphs.json").read_text())["layouts"]


@pytest.mark.parametrize("layout", ["openpose", "ntu-rgb+d", "ntu_edge"])
@pytest.mark.parametrize("strategy", ["uniform", "distance", "spatial"])
def test_official_matrices_equal_reference(reference, layout, strategy):
    ref = np.asarray(reference[layout]["strategies"][strategy]["A"], dtype=np.float32)
    assert np.array_equal(Graph(layout, strategy).A, ref)


@pytest.mark.parametrize("layout", ["openpose", "ntu-rgb+d", "ntu_edge"])
def test_layout_topology_matches_reference(reference, layout):
    ref = reference[layout]
    lay = get_layout(layout)
    assert lay.num_joints == ref["num_node"]
    assert lay.center == ref["center"]
    assert sorted(tuple(sorted(e)) for e in lay.edges) == sorted(tuple(sorted(e)) for e in ref["neighbor_link"])


@pytest.mark.parametrize("layout", ["openpose", "ntu-rgb+d", "ntu_edge"])
def test_spatial_quirk_misplaced_entries(reference, layout):
    # The official truncated hop distance puts these centripetal entries in A[1]; true distances do not.
    misplaced = reference[layout]["spatial_misplaced_vw"]
    official = Graph(layout, "spatial").A
    corrected = Graph(layout, "spatial", true_distance=True).A
    for v, w in misplaced:
        assert official[1, v, w] > 0 and official[2, v, w] == 0
        assert corrected[2, v, w] > 0 and corrected[1, v, w] == 0
    assert (corrected[2] > 0).sum() == reference[layout]["spatial_centripetal_entries_true"]


@pytest.mark.parametrize("layout", list_layouts())
@pytest.mark.parametrize("strategy", ["uniform", "distance", "distance-star", "spatial"])
def test_official_normalisation_columns_sum_to_one(layout, strategy):
    A = Graph(layout, strategy).A
    np.testing.assert_allclose(A.sum(axis=(0, 1)), 1.0, rtol=1e-6)


def _paper_eq10(adjacency_subsets, alpha=0.001):
    # Eq. 10 as printed: Λ_j^-1/2 A_j Λ_j^-1/2 with Λ_j^ii = Σ_k A_j^ik + α, A_j indexed [out, src].
    out = []
    for a in adjacency_subsets:
        lam = np.diag(a.sum(axis=1) + alpha)
        s = np.linalg.inv(np.sqrt(lam))
        out.append(s @ a @ s)
    return out


def test_paper_normalisation_is_eq10():
    lay = get_layout("ntu-rgb+d")
    v = lay.num_joints
    adj = np.zeros((v, v))
    for i, j in lay.edges:
        adj[i, j] = adj[j, i] = 1
    # distance partition: A0 = I, A1 = A (paper §3.6)
    expected = _paper_eq10([np.eye(v), adj])
    ours = Graph(lay, "distance", normalization="paper").A
    for k in range(2):
        np.testing.assert_allclose(ours[k].T, expected[k], rtol=1e-6, atol=1e-7)  # ours is [src, out]


def test_spatial_subsets_partition_the_closed_neighbourhood():
    for layout in list_layouts():
        g = Graph(layout, "spatial")
        binary = (g.A > 0).astype(int)
        assert binary.sum(axis=0).max() == 1  # every (v, w) in exactly one subset
        lay = g.layout
        closed = np.eye(lay.num_joints, dtype=int)
        for i, j in lay.edges:
            closed[i, j] = closed[j, i] = 1
        assert np.array_equal(binary.sum(axis=0), closed)


def test_gravity_centre_partition_follows_paper_rule():
    lay = get_layout("kinect-v1")
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(3, 10, lay.num_joints, 1)) for _ in range(3)]
    r = gravity_distances(clips, lay)
    # independent computation of r_i: mean over frames of |x_i - mean_j x_j|
    frames = np.concatenate([c[..., 0].transpose(1, 2, 0) for c in clips])  # (T, V, 3)
    expect = np.linalg.norm(frames - frames.mean(axis=1, keepdims=True), axis=2).mean(axis=0)
    np.testing.assert_allclose(r, expect, rtol=1e-10)
    g = Graph(lay, "spatial", center="gravity", gravity_distances=r)
    for i, j in lay.edges:
        for src, out in ((i, j), (j, i)):
            k = 1 if r[src] >= r[out] else 2  # centrifugal (farther) vs centripetal (closer)
            assert g.A[k, src, out] > 0 and g.A[3 - k, src, out] == 0


def test_gravity_requires_distances():
    with pytest.raises(LayoutError, match="gravity_distances"):
        Graph("openpose", "spatial", center="gravity")


def test_distance_star_declares_negated_tie():
    g = Graph("openpose", "distance-star")
    assert g.K == 2 and g.tie_weights == "negate"
    assert Graph("openpose", "distance").tie_weights is None


def test_aliases_and_unknown_layout():
    assert get_layout("nturgb+d").name == "ntu-rgb+d"
    assert get_layout("coco17").name == "coco"
    with pytest.raises(LayoutError, match="built-in layouts"):
        get_layout("no-such-skeleton")


@pytest.mark.parametrize("layout", list_layouts())
def test_parents_and_flips(layout):
    lay = get_layout(layout)
    p = lay.parents
    assert p[lay.center] == lay.center
    edges = {tuple(sorted(e)) for e in lay.edges}
    for j, parent in enumerate(p):
        if j != lay.center:
            assert tuple(sorted((j, int(parent)))) in edges
    for a, b in lay.flip_pairs:
        na, nb = lay.joint_names[a], lay.joint_names[b]
        assert {na.replace("left", "X").replace("right", "left").replace("X", "right"), nb} == {nb}


def test_custom_layout_yaml(tmp_path):
    f = tmp_path / "hand.yaml"
    f.write_text("name: stick\njoints: [a, b, c]\nedges: [[a, b], [b, 2]]\ncenter: b\n")
    lay = get_layout(str(f))
    assert lay.num_joints == 3 and lay.edges == ((0, 1), (1, 2)) and lay.center == 1
    assert Graph(lay, "spatial").A.shape == (3, 3, 3)


@pytest.mark.parametrize("text, message", [
    ("joints: [a, b]\nedges: [[a, z]]\ncenter: a\n", r"edges\[0\]: 'z' is not one of the joints"),
    ("joints: [a, b]\nedges: [[0, 5]]\ncenter: a\n", r"edges\[0\]: joint index 5 out of range"),
    ("joints: [a, b, c]\nedges: [[a, b]]\ncenter: a\n", r"not connected"),
    ("joints: [a, b]\nedges: [[a, b]]\n", r"missing key 'center'"),
    ("joints: [a, b]\nedges: [[a, b]]\ncenter: a\ncolour: red\n", r"unknown keys \['colour'\]"),
    ("joints: [a, a]\nedges: []\ncenter: a\n", r"duplicate joint names"),
    ("- not a mapping\n", r"expected a mapping"),
])
def test_custom_layout_errors_name_the_entry(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(LayoutError, match=message) as info:
        get_layout(str(f))
    assert str(f) in str(info.value)


# -- layout facts and identity (one table per layout) --------------------------------------------

@pytest.mark.parametrize("layout", list_layouts())
def test_layout_table_round_trips(layout):
    lay = get_layout(layout)
    table = lay.to_dict()
    json.dumps(table)  # plain data
    again = get_layout(table)
    assert again == lay and again.joint_names == lay.joint_names and again.edges == lay.edges
    assert (again.dims, again.normalization, again.aliases) == (lay.dims, lay.normalization, lay.aliases)
    assert lay.builtin and lay.ref == layout and lay.dims in (2, 3)


def test_layout_identity_is_the_table_not_the_joint_count():
    kinect, msr = get_layout("kinect-v1"), get_layout("msr-action3d")
    assert kinect.num_joints == msr.num_joints and kinect != msr
    renamed = get_layout({**kinect.to_dict(), "name": "my-kinect", "edges": kinect.to_dict()["edges"][::-1]})
    assert renamed == kinect and hash(renamed) == hash(kinect)  # same skeleton, another name and edge order
    assert not renamed.builtin and renamed.ref == renamed.to_dict()
    moved = {**kinect.to_dict(), "center": 2}
    assert get_layout(moved) != kinect


def test_layout_facts_live_in_the_table():
    assert get_layout("openpose").dims == 2 and get_layout("openpose").normalization == "kinetics"
    assert get_layout("kinect-v1").dims == 3 and get_layout("kinect-v1").normalization == "none"
    # aliases are the layout's own (the pose mapping and the CLI use these, there is no second map)
    assert get_layout("body_25").name == "body25" and get_layout("sbu").name == "openni-15"
    assert get_layout("kinetics").name == "openpose" and "utkinect" in get_layout("kinect-v1").aliases


def test_custom_layout_travels_as_its_table(tmp_path):
    f = tmp_path / "toy5.yaml"
    f.write_text("joints: [a, b, c, d, e]\nedges: [[a, b], [b, c], [c, d], [d, e]]\ncenter: c\ndims: 3\n")
    lay = get_layout(str(f))
    assert lay.name == "toy5" and lay.dims == 3 and not lay.builtin
    table = lay.ref
    assert isinstance(table, dict) and str(tmp_path) not in json.dumps(table)  # no path in the table
    f.unlink()
    assert get_layout(table) == lay  # works without the file


def test_layout_size_is_bounded_before_allocating(tmp_path):
    from stgcn.graph.layouts import MAX_JOINTS

    f = tmp_path / "huge.yaml"
    f.write_text("joints: 100000000\nedges: []\ncenter: 0\n")
    with pytest.raises(LayoutError, match=f"1..{MAX_JOINTS} joints") as info:
        get_layout(str(f))
    assert str(f) in str(info.value)
    with pytest.raises(LayoutError, match="more than"):
        get_layout({"joints": [f"j{i}" for i in range(MAX_JOINTS + 1)], "edges": [], "center": 0})
    with pytest.raises(LayoutError, match="dims"):
        get_layout({"joints": ["a"], "edges": [], "center": 0, "dims": 4})


def test_yaml_python_tags_in_a_layout_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "bad.yaml"
    f.write_text(f'joints: !!python/object/apply:os.system ["touch {marker}"]\nedges: []\ncenter: 0\n')
    with pytest.raises(LayoutError, match=r"bad\.yaml.*not valid YAML"):
        get_layout(str(f))
    assert not marker.exists()
