"""Evaluation protocols of the built-in datasets: name -> folds -> (train split, test split).

A protocol is how the literature evaluates on a dataset: one split (cross-subject) or several
folds whose accuracies are averaged (leave-one-actor-out, SBU's 5 folds). Every clip belongs to a
*group* (a subject, a recorded sequence, an actor, a pair of performers); a fold names the groups
it tests and the groups it trains on. :func:`item_splits` gives the split names of a clip from its
group, which is how :mod:`stgcn.data.sources` tags the clips when a dataset is listed, so a
prepared store holds the splits of every protocol of its dataset (``splits.json``) and
``stgcn cv`` (:mod:`stgcn.engine.cv`) runs them fold by fold.

``*-val`` protocols are for choosing hyperparameters: their folds are carved out of the training
groups of the main protocol (one training subject held out at a time), so the test groups are
never looked at while a recipe is tuned.

``PROTOCOLS`` is the table; docs/accuracy.md lists it with the published figures.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import DataError


@dataclass(frozen=True)
class Fold:
    """One train/test pair of a protocol."""

    name: str
    train: str
    test: str
    train_groups: frozenset
    test_groups: frozenset


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    folds: tuple[Fold, ...]
    reference: str = ""
    """Published figures on this protocol, with their source (from the dataset's PROVENANCE.md)."""

    def fold(self, name: str) -> Fold:
        for f in self.folds:
            if f.name == name:
                return f
        raise DataError(f"protocol {self.name!r} has no fold {name!r}; folds: "
                        f"{', '.join(f.name for f in self.folds)}")


def _fold(name: str, prefix: str, train: Iterable[Hashable], test: Iterable[Hashable]) -> Fold:
    return Fold(name, f"{prefix}_train", f"{prefix}_test", frozenset(train), frozenset(test))


def single(name: str, prefix: str, train: Iterable[Hashable], test: Iterable[Hashable], description: str,
           reference: str = "") -> Protocol:
    """A one-fold protocol with splits ``<prefix>_train`` / ``<prefix>_test``."""
    return Protocol(name, description, (_fold(name, prefix, train, test),), reference)


def leave_one_out(name: str, groups: Sequence[Hashable], labels: Sequence[str], prefix: str, description: str,
                  reference: str = "") -> Protocol:
    """Fold ``labels[k]`` tests ``groups[k]`` and trains on the other groups of ``groups``; splits
    ``<prefix><label>_train`` / ``_test``."""
    pool = frozenset(groups)
    folds = tuple(_fold(lab, f"{prefix}{lab}", pool - {g}, {g}) for g, lab in zip(groups, labels, strict=True))
    return Protocol(name, description, folds, reference)


def grouped_folds(name: str, tests: Sequence[Iterable[Hashable]], prefix: str, description: str,
                  reference: str = "") -> Protocol:
    """Fold k (1-based) tests the groups ``tests[k - 1]`` and trains on those of the other folds;
    splits ``<prefix><k>_train`` / ``_test``."""
    pool = frozenset(g for t in tests for g in t)
    folds = tuple(_fold(f"{prefix}{k}", f"{prefix}{k}", pool - frozenset(t), t) for k, t in enumerate(tests, 1))
    return Protocol(name, description, folds, reference)


def item_splits(protocols: Iterable[Protocol], group: Hashable) -> tuple[str, ...]:
    """Split names of a clip of ``group`` under ``protocols`` (each split once, in table order)."""
    out: list[str] = []
    for p in protocols:
        for f in p.folds:
            split = f.test if group in f.test_groups else f.train if group in f.train_groups else None
            if split is not None and split not in out:
                out.append(split)
    return tuple(out)


def split_names(protocols: Iterable[Protocol]) -> list[str]:
    """Every split name of ``protocols``, in table order."""
    out: list[str] = []
    for p in protocols:
        for f in p.folds:
            out += [s for s in (f.train, f.test) if s not in out]
    return out


# --------------------------------------------------------------------------- the table

_ODD, _EVEN = tuple(range(1, 11, 2)), tuple(range(2, 11, 2))
_UTK_SEQS = tuple((s, e) for s in range(1, 11) for e in (1, 2))  # group of a UTKinect clip: (subject, take)
_VAL = ("validation folds for choosing hyperparameters: one training subject of the cross-subject split "
        "held out at a time (the test subjects are never used)")


def _seqs(subjects: Iterable[int]) -> list[tuple[int, int]]:
    return [g for g in _UTK_SEQS if g[0] in subjects]


def _utkinect() -> dict[str, Protocol]:
    xsub = single("xsub", "xsub", _seqs(_ODD), _seqs(_EVEN),
                  "cross-subject half split: subjects 1,3,5,7,9 train, 2,4,...,10 test (Zhu et al. 2013, "
                  "Vemulapalli et al. 2014)", "97.1 % Lie group (Vemulapalli et al. 2014)")
    loso = leave_one_out("loso", _UTK_SEQS, [f"s{s:02d}_e{e:02d}" for s, e in _UTK_SEQS], "loso_",
                         "leave-one-sequence-out: each of the 20 recorded sequences tested in turn (Xia et al. "
                         "2012)", "90.9 % HOJ3D (Xia et al. 2012)")
    val = Protocol("xsub-val", _VAL, tuple(
        _fold(f"s{s:02d}", f"xsubval_s{s:02d}", _seqs(set(_ODD) - {s}), _seqs({s})) for s in _ODD))
    return {p.name: p for p in (xsub, loso, val)}


def _subject_protocols(train: tuple[int, ...], test: tuple[int, ...], description: str,
                       reference: str) -> dict[str, Protocol]:
    """A cross-subject split (groups: subject numbers) and its validation folds."""
    xsub = single("xsub", "xsub", train, test, description, reference)
    val = leave_one_out("xsub-val", train, [f"s{s:02d}" for s in train], "xsubval_", _VAL)
    return {p.name: p for p in (xsub, val)}


def _florence() -> dict[str, Protocol]:
    p = leave_one_out("loao", tuple(range(1, 11)), [str(k) for k in range(1, 11)], "fold",
                      "leave-one-actor-out: fold k tests actor k (10 folds, mean accuracy)",
                      "90.9 % Lie group (Vemulapalli et al. 2014); 82.0 % Seidenari et al. 2013")
    return {p.name: p}


SBU_SETS = ("s01s02", "s01s03", "s01s07", "s02s01", "s02s03", "s02s06", "s02s07", "s03s02", "s03s04", "s03s05",
            "s03s06", "s04s02", "s04s03", "s04s06", "s05s02", "s05s03", "s06s02", "s06s03", "s06s04", "s07s01",
            "s07s03")
# Test sets of the 5 folds of Yun et al. (1-based indices into SBU_SETS), from PROVENANCE.md.
SBU_FOLDS = ((1, 9, 15, 19), (5, 7, 10, 16), (2, 3, 20, 21), (4, 6, 8, 11), (12, 13, 14, 17, 18))


def _sbu() -> dict[str, Protocol]:
    p = grouped_folds("5fold", [[SBU_SETS[i - 1] for i in f] for f in SBU_FOLDS], "fold",
                      "5-fold cross-validation over the 21 sets of performer pairs (Yun et al. 2012 fold list)",
                      "98.6 % HCN (Li et al. 2018); 93.3 % ST-LSTM + Trust Gate (Liu et al. 2016)")
    return {p.name: p}


def _ntu(second: str) -> dict[str, Protocol]:
    # The NTU splits are assigned by the reader (formats.ntu.ntu_splits); groups are unused here.
    xsub = Protocol("xsub", "cross-subject (Shahroudy et al. 2016)",
                    (Fold("xsub", "xsub_train", "xsub_val", frozenset(), frozenset()),))
    other = Protocol(second, "cross-view" if second == "xview" else "cross-setup",
                     (Fold(second, f"{second}_train", f"{second}_val", frozenset(), frozenset()),))
    return {"xsub": xsub, second: other}


PROTOCOLS: dict[str, dict[str, Protocol]] = {
    "utkinect": _utkinect(),
    "msr-action3d": _subject_protocols(
        _ODD, _EVEN,
        "cross-subject on the 557 clips of files_used_in_cvpr12_paper.txt: odd subjects train (Wang et al. 2012)",
        "94.5 % HBRNN (Du et al. 2015); 89.5 % Lie group (Vemulapalli et al. 2014); 88.2 % actionlet ensemble "
        "(Wang et al. 2012)"),
    "kard": _subject_protocols(tuple(range(1, 6)), tuple(range(6, 11)),
                               "cross-subject: subjects 1-5 train, 6-10 test", ""),
    "florence3d": _florence(),
    "sbu": _sbu(),
    "ntu60": _ntu("xview"),
    "ntu120": _ntu("xset"),
    "kinetics": {"val": Protocol("val", "official train/val (Kay et al. 2017)",
                                 (Fold("val", "train", "val", frozenset(), frozenset()),))},
}


def protocols_for(dataset: str) -> dict[str, Protocol]:
    """The protocols of a built-in dataset (``{}`` for datasets without a table, e.g. arrays)."""
    return PROTOCOLS.get(dataset, {})


def get_protocol(dataset: str, name: str) -> Protocol:
    """One protocol; :class:`DataError` naming the dataset's protocols when it has no such one."""
    table = protocols_for(dataset)
    if name not in table:
        known = ", ".join(table) or "none (only the built-in datasets have protocol tables)"
        raise DataError(f"no protocol {name!r} for dataset {dataset!r}; its protocols: {known}")
    return table[name]
