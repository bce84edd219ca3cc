"""Dataset-level sources: which clips a dataset has, their labels and protocol splits.

Listing is cheap (file names and label files only); clips are read later, one :class:`SourceItem`
at a time, by :func:`load_item` (picklable, so worker processes can read in parallel). Files that
cannot be used are reported in ``DatasetSource.rejects`` with the reason, never dropped silently.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from .formats import kinect
from .protocols import SBU_SETS, item_splits, protocols_for, split_names
from .sample import Sample

_REPO_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
_BUNDLED = Path(__file__).resolve().parents[1] / "resources" / "datasets"


@dataclass(frozen=True)
class SourceItem:
    """One clip to read: picklable, sent to worker processes."""

    name: str
    path: str
    label: int | None
    splits: tuple[str, ...]
    fmt: str
    options: dict = field(default_factory=dict, hash=False)


@dataclass
class DatasetSource:
    name: str
    layout: str
    class_names: list[str]
    items: list[SourceItem]
    split_names: list[str]
    rejects: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def load_item(item: SourceItem) -> Sample:
    """Read one clip; raises :class:`DataError`. The item's label and name win over the file's."""
    s = read_clip(item.fmt, item.path, item.options)
    s.label = item.label
    s.name = item.name
    s.meta["splits"] = list(item.splits)
    return s


def read_clip(fmt: str, path: str, options: dict) -> Sample:
    """Read one clip with the reader of ``fmt`` (labels and names as the file gives them)."""
    from .formats.arrays import read_npy, read_npz
    from .formats.kinetics import read_kinetics
    from .formats.ntu import read_ntu
    from .formats.openpose import read_openpose

    readers = {
        "ntu": read_ntu, "kinetics": read_kinetics, "openpose": read_openpose, "pyskl": _pyskl_sample,
        "npy": read_npy, "npz": read_npz, "msr-action3d": kinect.read_msr_action3d,
        "utkinect": kinect.read_utkinect, "kard": kinect.read_kard, "florence3d": kinect.read_florence,
        "sbu": kinect.read_sbu,
    }
    if fmt not in readers:
        raise DataError(f"unknown format {fmt!r}; known: {sorted(readers)}", file=path)
    reader = readers[fmt]
    try:
        # Checked up front so that a TypeError raised inside a reader is never mistaken for this.
        inspect.signature(reader).bind(path, **options)
    except TypeError as exc:
        raise DataError(f"bad options {sorted(options)} for format {fmt!r}: {exc}", file=path) from None
    return reader(path, **options)


@functools.lru_cache(maxsize=4)
def _pyskl_index(path: str, mtime: float):
    from .formats.pyskl import load_pyskl

    _split, anns = load_pyskl(path)
    return {a["frame_dir"]: (i, a) for i, a in enumerate(anns)}


def _pyskl_sample(path: str, name: str | None = None) -> Sample:
    from .formats.pyskl import annotation_to_sample

    # The whole pickle is one file: keep it parsed instead of reloading it for every clip.
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    index = _pyskl_index(path, mtime)
    if name is None:
        if not index:
            raise DataError("pickle holds no annotation", file=path)
        name = next(iter(index))
    if name not in index:
        raise DataError(f"no annotation with frame_dir {name!r}", file=path)
    i, ann = index[name]
    return annotation_to_sample(ann, path, f"annotations[{i}]")


# --------------------------------------------------------------------------------------------


def _builtin_root(folder: str, path: str | None, bundled: str | None = None) -> Path:
    if path is not None:
        p = Path(path)
    elif (_REPO_DATA / folder).is_dir():
        p = _REPO_DATA / folder
    elif bundled is not None and (_BUNDLED / bundled).is_dir():
        p = _BUNDLED / bundled
    else:
        raise DataError(f"dataset folder not found (looked in {_REPO_DATA / folder}); pass path=",
                        file=folder)
    if not p.is_dir():
        raise DataError("not a folder", file=str(p))
    return p.resolve()


def _listing(root: Path, pattern: re.Pattern) -> tuple[list[Path], list[tuple[str, str]]]:
    files, rejects = [], []
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name.endswith((".txt", ".txt.gz")):
            (files if pattern.match(p.name) else rejects).append(p)
    return files, [(str(p), "file name does not follow the dataset's naming scheme") for p in rejects]


def _msr(path: str | None, zero_frames: str = "drop") -> DatasetSource:
    root = _builtin_root("msr_action3d", path)
    if (root / "MSRAction3DSkeletonReal3D").is_dir():
        root = root / "MSRAction3DSkeletonReal3D"
    used_file = root / "files_used_in_cvpr12_paper.txt"
    used = {line.strip()[:11] for line in kinect.read_text(used_file).splitlines() if line.strip()}
    files, rejects = _listing(root, kinect.MSR_RE)
    protocols = protocols_for("msr-action3d").values()
    rejects = [r for r in rejects if not r[0].endswith("files_used_in_cvpr12_paper.txt")]
    items = []
    for p in files:
        a, s, _e = (int(g) for g in kinect.MSR_RE.match(p.name).groups()[:3])
        key = p.name[:11]
        if key not in used:
            rejects.append((str(p), "not in files_used_in_cvpr12_paper.txt (corrupt or duplicated skeleton, "
                                    "excluded by the authors)"))
            continue
        items.append(SourceItem(key, str(p), a - 1, item_splits(protocols, s), "msr-action3d",
                                {"zero_frames": zero_frames}))
    return DatasetSource(
        "msr-action3d", "msr-action3d", list(kinect.MSR_CLASSES), items, split_names(protocols), rejects,
        {"protocol": "cross-subject on the 557 clips of files_used_in_cvpr12_paper.txt: odd subjects train "
                     "(Wang et al. 2012)",
         "preprocessing": {"zero_frames": zero_frames, "units": "metres"},
         "citation": "W. Li, Z. Zhang, Z. Liu, Action Recognition Based on a Bag of 3D Points, CVPRW 2010; "
                     "skeletons by J. Wang et al., CVPR 2012",
         "licence": "research use only, no explicit licence (see PROVENANCE.md)", "root": str(root)})


def _utkinect(path: str | None, labels: str = "modified", dedupe: bool = True) -> DatasetSource:
    root = _builtin_root("utkinect_action3d", path, bundled="utkinect")
    if (root / "joints").is_dir():
        root = root / "joints"
    if labels not in ("modified", "official"):
        raise DataError(f"labels must be 'modified' or 'official', found {labels!r}", file=str(root))
    label_name = "actionLabel_modified.txt" if labels == "modified" else "actionLabel.txt"
    table = kinect.read_utkinect_labels(root / label_name)
    protocols = protocols_for("utkinect").values()
    items, rejects = [], []
    for seq, acts in sorted(table.items()):
        group = (int(seq[1:3]), int(seq[5:7]))  # (subject, take), as in the protocol table
        joints = root / f"joints_{seq}.txt"
        if not joints.exists() and not joints.with_name(joints.name + ".gz").exists():
            rejects.append((str(joints), "joints file listed in the label file is missing"))
            continue
        if joints.with_name(joints.name + ".gz").exists() and not joints.exists():
            joints = joints.with_name(joints.name + ".gz")
        for act, (start, end) in acts.items():
            name = f"{seq}_{act}"
            if start != start or end != end:  # NaN
                rejects.append((f"{root / label_name}:{seq}:{act}", "action missing (NaN NaN in the label file)"))
                continue
            items.append(SourceItem(name, str(joints), kinect.UTK_CLASSES.index(act), item_splits(protocols, group),
                                    "utkinect", {"start": start, "end": end, "dedupe": dedupe}))
    return DatasetSource(
        "utkinect", "kinect-v1", list(kinect.UTK_CLASSES), items, split_names(protocols), rejects,
        {"protocol": "cross-subject half split: subjects 1,3,5,7,9 train (Zhu et al. 2013, Vemulapalli et al. "
                     "2014)", "preprocessing": {"labels": label_name, "dedupe_frame_ids": dedupe,
                                                 "units": "metres"},
         "citation": "L. Xia, C.-C. Chen, J. K. Aggarwal, View Invariant Human Action Recognition Using "
                     "Histograms of 3D Joints, CVPRW 2012",
         "licence": "research use with citation (no licence stated; see PROVENANCE.md)", "root": str(root)})


def _kard(path: str | None) -> DatasetSource:
    root = _builtin_root("kard", path)
    if (root / "kard_realworld").is_dir():
        root = root / "kard_realworld"
    files, rejects = _listing(root, kinect.KARD_RE)
    protocols = protocols_for("kard").values()
    items = []
    for p in files:
        a, s, _e = (int(g) for g in kinect.KARD_RE.match(p.name).groups()[:3])
        items.append(SourceItem(p.name.split("_realworld")[0], str(p), a - 1, item_splits(protocols, s), "kard", {}))
    return DatasetSource(
        "kard", "kard", list(kinect.KARD_CLASSES), items, split_names(protocols), rejects,
        {"protocol": "cross-subject: subjects 1-5 train, 6-10 test", "preprocessing": {"units": "metres (mm / 1000)"},
         "citation": "S. Gaglio, G. Lo Re, M. Morana, Human Activity Recognition Process Using 3-D Posture Data, "
                     "IEEE THMS 2014",
         "licence": "research use with citation (terms on Mendeley Data k28dtm7tr6)", "root": str(root)})


def _florence(path: str | None) -> DatasetSource:
    root = _builtin_root("florence3d", path)
    if (root / "florence").is_dir():
        root = root / "florence"
    files, rejects = _listing(root, kinect.FLORENCE_RE)
    protocols = protocols_for("florence3d").values()
    items = []
    for p in files:
        a, s, _vid = (int(g) for g in kinect.FLORENCE_RE.match(p.name).groups()[:3])
        items.append(SourceItem(p.name.split(".")[0], str(p), a - 1, item_splits(protocols, s), "florence3d", {}))
    return DatasetSource(
        "florence3d", "openni-15", list(kinect.FLORENCE_CLASSES), items, split_names(protocols), rejects,
        {"protocol": "leave-one-actor-out: fold k tests actor k (10 folds, report the mean)",
         "preprocessing": {"units": "metres (mm / 1000)"},
         "citation": "L. Seidenari et al., Recognizing Actions from Depth Cameras as Weakly Aligned Multi-Part "
                     "Bag-of-Poses, CVPRW 2013",
         "licence": "research use with citation (no licence stated; see PROVENANCE.md)", "root": str(root)})


def _sbu(path: str | None) -> DatasetSource:
    root = _builtin_root("sbu_kinect_interaction", path)
    protocols = protocols_for("sbu").values()
    items, rejects = [], []
    for p in sorted(root.glob("*/*/*/skeleton_pos.txt*")):
        st, cl, take = p.parts[-4], p.parts[-3], p.parts[-2]
        if st not in SBU_SETS or not cl.isdigit() or not 1 <= int(cl) <= 8:
            rejects.append((str(p), "set or class folder outside the SBU protocol"))
            continue
        items.append(SourceItem(f"{st}_{cl}_{take}", str(p), int(cl) - 1, item_splits(protocols, st), "sbu", {}))
    return DatasetSource(
        "sbu", "openni-15", list(kinect.SBU_CLASSES), items, split_names(protocols), rejects,
        {"protocol": "5-fold cross-validation over the 21 sets (Yun et al. 2012 fold list)",
         "preprocessing": {"units": "SBU normalised coordinates (not metric)"},
         "citation": "K. Yun et al., Two-person Interaction Detection Using Body-Pose Features and Multiple "
                     "Instance Learning, CVPRW 2012",
         "licence": "research use with citation (no licence stated; see PROVENANCE.md)", "root": str(root)})


# --------------------------------------------------------------------------------------------


def _check_option(name: str, value, choices: tuple) -> None:
    """A reader option is refused once, before any file is read (not as a reject of every clip)."""
    if value not in choices:
        raise ConfigError(f"reader option {name}={value!r}: expected one of {', '.join(map(repr, choices))}")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"reader option {name}={value!r}: expected a whole number >= 1")


def _ntu(benchmark: str, path: str | None, max_bodies: int = 2, body_selection: str = "official",
         skip_missing: bool = True) -> DatasetSource:
    from .formats.ntu import BODY_SELECTIONS, missing_skeleton_samples, ntu_splits, parse_ntu_name

    _check_option("body_selection", body_selection, BODY_SELECTIONS)
    _check_count("max_bodies", max_bodies)
    if path is None:
        raise DataError(f"{benchmark} needs path= (a folder of .skeleton files; never bundled)")
    root = Path(path)
    if not root.is_dir():
        raise DataError("not a folder", file=str(root))
    missing = missing_skeleton_samples(benchmark) if skip_missing else frozenset()
    n_classes = 60 if benchmark == "ntu60" else 120
    items, rejects = [], []
    for p in sorted(root.rglob("*.skeleton")):
        stem = p.name.split(".")[0]
        info = parse_ntu_name(stem)
        if info is None:
            rejects.append((str(p), "name does not follow SsssCcccPpppRrrrAaaa"))
        elif stem in missing:
            rejects.append((str(p), f"listed in {benchmark}-samples-with-missing-skeletons.txt"))
        elif not 1 <= info["action"] <= n_classes:
            rejects.append((str(p), f"action A{info['action']:03d} is not one of the {n_classes} classes"))
        else:
            items.append(SourceItem(stem, str(p), info["action"] - 1, ntu_splits(info, benchmark), "ntu",
                                    {"max_bodies": max_bodies, "body_selection": body_selection}))
    second = "xview" if benchmark == "ntu60" else "xset"
    return DatasetSource(
        benchmark, "ntu-rgb+d", [f"A{i:03d}" for i in range(1, n_classes + 1)], items,
        ["xsub_train", "xsub_val", f"{second}_train", f"{second}_val"], rejects,
        {"protocol": "cross-subject and " + ("cross-view (cameras 2, 3 train)" if benchmark == "ntu60"
                                              else "cross-setup (even setups train)"),
         "preprocessing": {"max_bodies": max_bodies, "body_selection": body_selection,
                           "skip_missing_skeletons": skip_missing},
         "citation": "A. Shahroudy et al., NTU RGB+D, CVPR 2016" + (
             "; J. Liu et al., NTU RGB+D 120, TPAMI 2019" if benchmark == "ntu120" else ""),
         "licence": "NTU RGB+D release agreement (research only; never redistributed)", "root": str(root)})


def _kinetics(path: str | None, **options) -> DatasetSource:
    from .formats.kinetics import PAD_MODES, PERSON_SELECTIONS, read_kinetics_labels

    opts = {"max_persons": 2, "person_selection": "clip", "pad_to": 300, "pad_mode": "loop"} | options
    _check_option("person_selection", opts["person_selection"], PERSON_SELECTIONS)
    _check_option("pad_mode", opts["pad_mode"], PAD_MODES)
    _check_count("max_persons", opts["max_persons"])
    if path is None:
        raise DataError("kinetics needs path= (folder with kinetics_train/, kinetics_val/ and label JSONs)")
    root = Path(path)
    items, rejects, classes = [], [], {}
    splits = []
    for split in ("train", "val"):
        label_file = root / f"kinetics_{split}_label.json"
        if not label_file.exists():
            continue
        splits.append(split)
        for cid, entry in sorted(read_kinetics_labels(label_file).items()):
            clip = root / f"kinetics_{split}" / f"{cid}.json"
            li = entry["label_index"]
            if "label" in entry and classes.setdefault(li, entry["label"]) != entry["label"]:
                raise DataError(f"label_index {li} names both {classes[li]!r} and {entry['label']!r}",
                                file=str(label_file), record=cid)
            if not entry["has_skeleton"]:
                rejects.append((str(clip), "has_skeleton is false in the label file"))
            elif not clip.exists():
                rejects.append((str(clip), "listed in the label file but the clip JSON is missing"))
            else:
                items.append(SourceItem(cid, str(clip), li, (split,), "kinetics", dict(opts)))
    if not splits:
        raise DataError("no kinetics_train_label.json or kinetics_val_label.json", file=str(root))
    n = max(classes, default=-1) + 1
    n = max(n, max((it.label for it in items), default=-1) + 1)
    names = [classes.get(i, f"class_{i}") for i in range(n)]
    return DatasetSource("kinetics", "openpose", names, items, splits, rejects,
                         {"protocol": "official train/val", "preprocessing": opts,
                          "citation": "W. Kay et al., The Kinetics Human Action Video Dataset, 2017; skeletons "
                                      "by S. Yan et al., ST-GCN, AAAI 2018",
                          "licence": "Kinetics-skeleton research release", "root": str(root)})


def _labels_path(root: Path, labels: str | None) -> Path:
    p = Path(labels) if labels is not None else (root if root.is_dir() else root.parent) / "labels.csv"
    if not p.exists():
        raise DataError("labels CSV not found (pass labels=)", file=str(p))
    return p


def _openpose(path: str | None, labels: str | None = None, class_names: list[str] | None = None,
              **options) -> DatasetSource:
    from .formats.arrays import read_labels_csv

    if path is None:
        raise DataError("openpose needs path= (a folder of clip folders + labels.csv)")
    root = Path(path)
    rows, classes = read_labels_csv(_labels_path(root, labels), class_names)
    opts = {"to_coco18": True} | options
    items, rejects = [], []
    for name, label, splits in rows:
        clip = root / name
        if not clip.is_dir():
            rejects.append((str(clip), "listed in the labels CSV but the clip folder is missing"))
            continue
        items.append(SourceItem(name, str(clip), label, splits, "openpose", dict(opts)))
    split_names = sorted({s for it in items for s in it.splits})
    return DatasetSource("openpose", "openpose" if opts["to_coco18"] else "body25", classes, items, split_names,
                         rejects, {"preprocessing": opts, "root": str(root)})


def _pyskl(path: str | None, layout=None, class_names: list[str] | None = None) -> DatasetSource:
    """A pyskl pickle. ``layout`` (a name, YAML path or table) names the joint order; without it
    the order is guessed from the joint count (25: ntu-rgb+d, 17: coco, 18: openpose; else unknown,
    and training asks for ``--layout``)."""
    from .formats.pyskl import load_pyskl

    if path is None:
        raise DataError("pyskl needs path= (an annotation pickle)")
    split, anns = load_pyskl(path)
    member = {}
    for sname, names in split.items():
        for n in names:
            member.setdefault(n, []).append(sname)
    items = []
    for ann in anns:
        label = ann.get("label")  # checked by load_pyskl: None or a class index
        items.append(SourceItem(ann["frame_dir"], str(path), None if label is None else int(label),
                                tuple(member.get(ann["frame_dir"], ())), "pyskl", {"name": ann["frame_dir"]}))
    v = anns[0]["keypoint"].shape[2] if anns and getattr(anns[0]["keypoint"], "ndim", 0) == 4 else None
    if layout is None:
        layout = {25: "ntu-rgb+d", 17: "coco", 18: "openpose"}.get(v, "unknown")
    else:
        from ..graph import get_layout

        lay = get_layout(layout)
        if v is not None and v != lay.num_joints:
            raise DataError(f"the annotations have {v} joints; layout {lay.name!r} has {lay.num_joints}",
                            file=str(path), record="annotations[0]")
        layout = lay.ref
    n = max((it.label for it in items if it.label is not None), default=-1) + 1
    classes = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    return DatasetSource("pyskl", layout, classes, items, list(split), [],
                         {"root": str(path), "preprocessing": {}})


def _arrays(path: str | None, labels: str | None = None, layout: str | None = None,
            class_names: list[str] | None = None) -> DatasetSource:
    from .formats.arrays import read_labels_csv

    if path is None:
        raise DataError("arrays needs path= (a folder of .npy files or one .npz)")
    root = Path(path)
    rows, classes = read_labels_csv(_labels_path(root, labels), class_names)
    items, rejects = [], []
    npz_keys: set[str] | None = None
    if root.is_file() and root.suffix == ".npz":
        import zipfile

        try:
            with zipfile.ZipFile(root) as z:
                npz_keys = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"not a readable .npz archive: {exc}", file=str(root)) from None
    elif not root.is_dir():
        raise DataError("expected a folder of .npy files or an .npz file", file=str(root))
    opts = {"layout": layout} if layout else {}
    for name, label, splits in rows:
        if npz_keys is not None:
            if name not in npz_keys:
                rejects.append((f"{root}:{name}", "listed in the labels CSV but not in the archive"))
                continue
            items.append(SourceItem(name, str(root), label, splits, "npz", {"key": name} | opts))
        else:
            f = root / f"{name}.npy"
            if not f.exists():
                rejects.append((str(f), "listed in the labels CSV but the .npy file is missing"))
                continue
            items.append(SourceItem(name, str(f), label, splits, "npy", dict(opts)))
    split_names = sorted({s for it in items for s in it.splits})
    return DatasetSource("arrays", layout or "unknown", classes, items, split_names, rejects,
                         {"root": str(root), "preprocessing": {}})


_SOURCES = {
    "ntu60": lambda path, **o: _ntu("ntu60", path, **o),
    "ntu120": lambda path, **o: _ntu("ntu120", path, **o),
    "kinetics": _kinetics,
    "openpose": _openpose,
    "pyskl": _pyskl,
    "arrays": _arrays,
    "msr-action3d": _msr,
    "utkinect": _utkinect,
    "kard": _kard,
    "florence3d": _florence,
    "sbu": _sbu,
}


def list_sources() -> list[str]:
    """Names accepted by :func:`open_source`."""
    return list(_SOURCES)


def open_source(fmt: str, path: str | None = None, **options) -> DatasetSource:
    """List a dataset: its clips, labels, splits and rejected files.

    Built-in datasets (``msr-action3d``, ``utkinect``, ``kard``, ``florence3d``, ``sbu``) default to
    ``../shared/data/<folder>`` next to the repository, and ``utkinect`` to the copy bundled in the
    package when that is absent.
    """
    key = fmt.lower()
    if key not in _SOURCES:
        raise DataError(f"unknown source {fmt!r}; available: {', '.join(_SOURCES)}")
    try:
        return _SOURCES[key](None if path is None else str(path), **options)
    except TypeError as exc:
        raise DataError(f"bad options {sorted(options)} for source {fmt!r}: {exc}") from None
