"""Fuzz the custom layout reader: any YAML text gives a valid Layout or a LayoutError, nothing else."""

import contextlib

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stgcn.errors import LayoutError
from stgcn.graph import Graph, load_layout_file

names = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
joint_ref = st.one_of(names, st.integers(-3, 8), st.booleans(), st.none())
docs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(names, st.integers()),
        "joints": st.one_of(st.lists(names, max_size=8), st.integers(-2, 8), names,
                            st.lists(st.integers(), max_size=3)),
        "edges": st.one_of(st.lists(st.one_of(st.lists(joint_ref, max_size=3), joint_ref), max_size=10), names),
        "center": joint_ref,
        "extra": st.integers(),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=docs)
def test_layout_yaml_fuzz(tmp_path, doc):
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        lay = load_layout_file(path)
    except LayoutError as exc:
        assert str(path) in str(exc)
        return
    g = Graph(lay, "spatial")
    assert g.A.shape == (3, lay.num_joints, lay.num_joints)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_layout_arbitrary_text(tmp_path, text):
    path = tmp_path / "layout.yaml"
    path.write_text(text)
    with contextlib.suppress(LayoutError):
        load_layout_file(path)
