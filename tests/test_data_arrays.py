import numpy as np
import pytest

from stgcn.data import load_item, load_sample, open_source
from stgcn.data.formats.arrays import read_labels_csv, read_npy
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
