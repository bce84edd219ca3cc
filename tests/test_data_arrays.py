import zipfile

import numpy as np
import pytest

from faults import Evil, bounded, npy_claiming, npy_with_damaged_header
from stgcn.data import load_item, load_sample, open_source
from stgcn.data.formats.arrays import read_labels_csv, read_npy, read_npz
from stgcn.errors import DataError


def test_npy_folder_source(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.random((7, 20, 3)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.random((2, 5, 20, 3)))
    (tmp_path / "labels.csv").write_text("name,label,train,test\na,1,1,0\nb,0,0,1\nmissing,0,1,0\n")
    src = open_source("arrays", str(tmp_path), layout="kinect-v1")
    assert len(src.items) == 2 and len(src.rejects) == 1 and src.split_names == ["test", "train"]
    s = load_item(src.items[0])
    assert s.keypoint.shape == (1, 7, 20, 3) and s.label == 1
    assert load_sample(tmp_path / "b.npy").keypoint.shape == (2, 5, 20, 3)


def test_layout_mismatch(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 18, 2)))
    with pytest.raises(DataError, match="layout"):
        read_npy(tmp_path / "a.npy", layout="ntu-rgb+d")


def test_npz_and_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 15, 3)), y=np.ones((1, 2, 15, 3)))
    (tmp_path / "labels.csv").write_text("name,label,split\nx,walk,train\ny,run,test\n")
    src = open_source("arrays", str(tmp_path / "d.npz"))
    assert src.class_names == ["run", "walk"]
    assert [load_item(i).label for i in src.items] == [1, 0]
    assert load_sample(tmp_path / "d.npz").name == "x"


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("id,cls\n", "header"),
    ("name,label\na,1,2\n", "columns"),
    ("name,label\na,1\na,2\n", "duplicate"),
    ("name,label,train\na,1,maybe\n", "1/0"),
])
def test_bad_csv(tmp_path, text, match):
    p = tmp_path / "labels.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_labels_csv(p)


@pytest.mark.parametrize("arr, match", [
    (np.zeros((3, 4)), "shape"),
    (np.zeros((2, 3, 4, 5)), "coordinates"),
    (np.array([[[np.nan, 0, 0]]]), "non-finite"),
    (np.array(["a"]), "numeric"),
])
def test_bad_arrays(tmp_path, arr, match):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(DataError, match=match):
        read_npy(tmp_path / "x.npy")


def test_npy_with_damaged_header_is_a_data_error(tmp_path):
    p = tmp_path / "clip.npy"
    p.write_bytes(npy_with_damaged_header(np.zeros((4, 20, 3), np.float32)))
    with pytest.raises(DataError):
        load_sample(p)


def test_npy_and_npz_with_pickled_objects_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.array([Evil(marker), 1], dtype=object)
    np.save(tmp_path / "x.npy", arr, allow_pickle=True)
    np.savez(tmp_path / "x.npz", x=arr)
    with pytest.raises(DataError, match="x.npy"):
        read_npy(tmp_path / "x.npy")
    with pytest.raises(DataError, match="x.npz"):
        read_npz(tmp_path / "x.npz")
    with pytest.raises(DataError, match="x.npy"):
        load_sample(tmp_path / "x.npy")
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["openpose", "arrays"])
def test_labels_csv_errors_name_file_and_line(tmp_path, fmt):
    labels = tmp_path / "labels.csv"
    labels.write_text("name,label,train\na,0,1\nb,1,maybe\n")
    with pytest.raises(DataError, match="must be 1/0 or true/false") as info:
        open_source(fmt, str(tmp_path))
    assert info.value.file == str(labels) and info.value.record == "line 3"


def test_bounded_helper_reports_package_errors(tmp_path):
    # the harness itself: a small bad file gives the package's error, not a MemoryError
    p = tmp_path / "a.npy"
    p.write_bytes(npy_claiming((4, 20, 3)))
    assert bounded("load_sample(p)", p).startswith("RESULT StgcnError")


def test_npy_header_claiming_huge_shape_is_rejected(tmp_path):
    p = tmp_path / "huge.npy"
    p.write_bytes(npy_claiming((10**9, 25, 3)))  # 192 bytes claiming 280 GiB
    assert bounded("load_sample(p)", p).startswith("RESULT StgcnError")


def test_npz_member_claiming_huge_shape_is_rejected(tmp_path):
    p = tmp_path / "huge.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.npy", npy_claiming((10**9, 25, 3)))
    assert bounded("load_sample(p)", p).startswith("RESULT StgcnError")
