"""The protocol table: folds partition the groups as the papers define them; clips get their splits."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from stgcn.data import open_source
from stgcn.data import protocols as P
from stgcn.errors import DataError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not present at {SHARED}")


def _check_partition(protocol: P.Protocol, groups: set) -> None:
    """Every fold trains and tests on disjoint groups of ``groups``; every group is tested once."""
    tested = collections.Counter()
    for f in protocol.folds:
        assert not f.train_groups & f.test_groups and f.test_groups
        assert f.train_groups | f.test_groups == groups
        tested.update(f.test_groups)
    assert set(tested) == groups and set(tested.values()) == {1}


def test_leave_one_out_and_grouped_folds():
    p = P.leave_one_out("lo", [1, 2, 3], ["a", "b", "c"], "lo_", "d")
    _check_partition(p, {1, 2, 3})
    assert [(f.name, f.train, f.test) for f in p.folds][0] == ("a", "lo_a_train", "lo_a_test")
    assert P.item_splits([p], 2) == ("lo_a_train", "lo_b_test", "lo_c_train")
    assert P.item_splits([p], 9) == ()
    g = P.grouped_folds("g", [["x", "y"], ["z"]], "fold", "d")
    _check_partition(g, {"x", "y", "z"})
    assert P.split_names([g]) == ["fold1_train", "fold1_test", "fold2_train", "fold2_test"]
    with pytest.raises(DataError, match="protocol 'g' has no fold 'fold3'; folds: fold1, fold2"):
        g.fold("fold3")


def test_table_matches_the_papers():
    utk = P.protocols_for("utkinect")
    _check_partition(utk["loso"], set(P._UTK_SEQS))
    assert len(utk["loso"].folds) == 20 and utk["loso"].folds[0].test_groups == {(1, 1)}
    (xsub,) = utk["xsub"].folds
    assert {s for s, _ in xsub.train_groups} == {1, 3, 5, 7, 9} and {s for s, _ in xsub.test_groups} == {2, 4, 6, 8, 10}
    # validation folds never touch the test subjects
    for dataset in ("utkinect", "msr-action3d", "kard"):
        table = P.protocols_for(dataset)
        for f in table["xsub-val"].folds:
            assert f.train_groups | f.test_groups == table["xsub"].folds[0].train_groups
        _check_partition(table["xsub-val"], table["xsub"].folds[0].train_groups)
    assert {f.name for f in utk["xsub-val"].folds} == {"s01", "s03", "s05", "s07", "s09"}
    _check_partition(P.protocols_for("florence3d")["loao"], set(range(1, 11)))
    sbu = P.protocols_for("sbu")["5fold"]
    _check_partition(sbu, set(P.SBU_SETS))
    assert sbu.folds[0].test_groups == {"s01s02", "s03s04", "s05s02", "s06s04"}  # PROVENANCE.md, fold 1
    assert "97.1" in utk["xsub"].reference and "90.9" in P.protocols_for("florence3d")["loao"].reference
    assert P.get_protocol("ntu60", "xview").folds[0].test == "xview_val"
    with pytest.raises(DataError, match="no protocol 'loso' for dataset 'msr-action3d'; its protocols: xsub, "
                                        "xsub-val"):
        P.get_protocol("msr-action3d", "loso")
    with pytest.raises(DataError, match="only the built-in datasets"):
        P.get_protocol("arrays", "xsub")


def _counts(src):
    return collections.Counter(s for it in src.items for s in it.splits)


def test_bundled_utkinect_gets_every_protocol_split():
    bundled = Path(__file__).resolve().parents[1] / "src" / "stgcn" / "resources" / "datasets" / "utkinect"
    src = open_source("utkinect", path=str(bundled))
    c = _counts(src)
    assert src.split_names == P.split_names(P.protocols_for("utkinect").values())
    assert (c["xsub_train"], c["xsub_test"]) == (100, 99)
    assert sum(c[f"loso_{f.name}_test"] for f in P.protocols_for("utkinect")["loso"].folds) == 199
    assert c["loso_s10_e02_test"] == 9 and c["loso_s10_e02_train"] == 190  # s10_e02 lacks 'carry'
    assert sum(c[f"xsubval_s{s:02d}_test"] for s in (1, 3, 5, 7, 9)) == c["xsub_train"]
    names = {it.name: it.splits for it in src.items}
    assert "xsubval_s01_test" in names["s01_e02_walk"] and not any("xsubval" in s for s in names["s02_e01_walk"])


@needs_shared
@pytest.mark.parametrize("dataset, protocol, tests", [
    ("msr-action3d", "xsub-val", 284), ("kard", "xsub-val", 270), ("florence3d", "loao", 215), ("sbu", "5fold", 282)])
def test_shared_datasets_fold_sizes(dataset, protocol, tests):
    src = open_source(dataset)
    c = _counts(src)
    folds = P.protocols_for(dataset)[protocol].folds
    assert sum(c[f.test] for f in folds) == tests  # every clip of the pool tested exactly once
    assert all(c[f.train] + c[f.test] == tests for f in folds)
