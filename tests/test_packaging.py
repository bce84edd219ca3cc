"""The package as someone else gets it: ``python -m build`` makes an sdist and a wheel whose contents
are what ships (no tests, no data beyond the bundled dataset, video and weights; the licence, the
recipes and resources present), and the wheel installs with pip alone into a fresh virtual
environment that already has torch, keeps that torch, and runs there — with the C reader when a
compiler built it, and the numpy path (said so) when none did.

The builds use ``--no-isolation``: the backend is the setuptools pinned in constraints.txt and
installed by ``make`` (dev extra), so no build environment is downloaded per run and every run
builds with the same version. Slow (a fresh venv gets torch from the local wheel and the core
dependencies from the registry; the demo adds the [video] extra): about three minutes.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# What may ship besides Python modules, the extension and the metadata (recipes, label lists, the
# bundled dataset and clip, the shipped weights and their cards, the web app's page): nothing else.
SHIPPED_DATA = ["stgcn/engine/recipes/*.yaml", "stgcn/resources/*.txt", "stgcn/resources/datasets/utkinect/*",
                "stgcn/resources/videos/ta_chi.mp4", "stgcn/resources/videos/PROVENANCE.md",
                "stgcn/resources/pretrained/*", "stgcn/resources/web/*"]
MAX_WHEEL_MB = 16  # the bundled dataset, clip and weights are about 8 MB
# Packages an install of the core wheel must not bring (a CUDA torch, the extras' heavy stacks).
HEAVY = ["nvidia-*", "triton", "jax", "jaxlib", "tensorflow*", "mediapipe", "opencv*", "onnxruntime", "scipy"]


def _run(cmd: list, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> str:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def _source_tree(dst: Path) -> Path:
    """The files a commit would hold (git's list), so untracked build leftovers never ship."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: the source files to build from are unknown")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    return dst


def _build(src: Path, out: Path, *args: str, env: dict | None = None) -> list[Path]:
    pytest.importorskip("build", reason="the dev extra's `build` (pip install -e '.[dev]')")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, *args, src], env=env)
    return sorted(out.iterdir())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _source_tree(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="module")
def dists(source, tmp_path_factory) -> dict[str, Path]:
    files = _build(source, tmp_path_factory.mktemp("dist"))
    return {"wheel": next(f for f in files if f.suffix == ".whl"),
            "sdist": next(f for f in files if f.name.endswith(".tar.gz"))}


@pytest.fixture(scope="module")
def wheel_without_compiler(source, tmp_path_factory) -> Path:
    # CC=false: the compiler "fails", as a machine without one does; the extension is optional
    out = tmp_path_factory.mktemp("nocc")
    files = _build(source, out, "--wheel", env={**os.environ, "CC": "false"})
    return next(f for f in files if f.suffix == ".whl")


def _data_files(names: list[str]) -> list[str]:
    return [n for n in names if not n.endswith("/") and not n.endswith(".py") and ".dist-info/" not in n
            and not fnmatch.fnmatch(n, "stgcn/data/formats/_ntu_fast*.so")]


def _package_files(source: Path) -> list[str]:
    """Every file under src/stgcn that should ship: recipes and resources."""
    root = source / "src"
    return sorted(str(p.relative_to(root)) for d in ("stgcn/engine/recipes", "stgcn/resources")
                  for p in (root / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_wheel_holds_the_package_and_its_resources_only(dists, source):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    unexpected = [n for n in _data_files(names) if not any(fnmatch.fnmatch(n, p) for p in SHIPPED_DATA)]
    assert unexpected == []  # nothing beyond the bundled dataset, video, weights, labels and recipes
    shipped = [f for f in _package_files(source) if not f.endswith(".py")]
    assert {"stgcn/engine/recipes/small.yaml", "stgcn/resources/videos/ta_chi.mp4",
            "stgcn/resources/kinetics400-labels.txt"} <= set(shipped)
    assert [f for f in shipped if f not in names] == []  # every recipe and resource is in it
    if shutil.which(os.environ.get("CC", "cc")):
        assert any(fnmatch.fnmatch(n, "stgcn/data/formats/_ntu_fast*.so") for n in names)
    assert dists["wheel"].stat().st_size < MAX_WHEEL_MB * 2**20


def test_sdist_builds_the_package_without_the_tests(dists, source):
    with tarfile.open(dists["sdist"]) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()]
    assert not [n for n in names if n.startswith("tests") or "conftest" in n]
    assert {"LICENSE", "README.md", "pyproject.toml", "src/stgcn/data/formats/_ntu_fast.c"} <= set(names)
    assert [f for f in _package_files(source) if "src/" + f not in names] == []
    extra = [n for n in names if n.startswith("src/stgcn/") and not n.endswith(".py")
             and not any(fnmatch.fnmatch(n, "src/" + p) for p in SHIPPED_DATA) and not n.endswith("_ntu_fast.c")]
    assert extra == []


# --------------------------------------------------------------------------- a fresh environment


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory) -> Path:
    """A fresh venv with the tested torch (the local CPU wheel, as `make` installs it), then the wheel
    with pip alone: no constraints, so the ranges in pyproject.toml decide the rest."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", env_dir])
    pip = [env_dir / "bin" / "python", "-m", "pip", "install", "-q"]
    _run([*pip, "-c", REPO / "constraints.txt", "torch"])
    _run([*pip, dists["wheel"]])
    return env_dir


def _installed(env_dir: Path) -> dict[str, str]:
    out = _run([env_dir / "bin" / "python", "-m", "pip", "list", "--format", "json"])
    return {p["name"].lower(): p["version"] for p in json.loads(out[out.index("["):out.rindex("]") + 1])}


def test_wheel_installs_beside_the_users_torch_and_pulls_nothing_heavy(venv):
    pkgs = _installed(venv)
    assert pkgs["torch"].startswith("2.13.0") and pkgs["stgcn"] == "0.1.0"
    assert [n for n in pkgs if any(fnmatch.fnmatch(n, h) for h in HEAVY)] == []


def test_installed_commands_run_from_the_venv(venv, tmp_path):
    from demo_support import make_checkpoint

    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([bin_ / "python", "-c", "import stgcn, sys; print(stgcn.__file__); print(stgcn.__version__)"],
                 cwd=tmp_path, env=env)
    assert str(venv) in where and "0.1.0" in where  # the installed copy, not the repository's src/
    assert "train" in _run([bin_ / "stgcn", "--help"], cwd=tmp_path, env=env)
    assert "openpose" in _run([bin_ / "stgcn", "layouts"], cwd=tmp_path, env=env)
    assert "C extension" in _run([bin_ / "python", "-c",
                                  "from stgcn.data.formats.ntu import reader_backend; print(reader_backend())"],
                                 cwd=tmp_path, env=env)
    # the bundled dataset from the installed package, then a prediction with a checkpoint made here
    _run([bin_ / "stgcn", "prepare", "utkinect", "--out", tmp_path / "store", "--no-progress"], cwd=tmp_path, env=env)
    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    out = _run([bin_ / "stgcn", "predict", f"{tmp_path / 'store'}#0", "--checkpoint", ckpt, "--topk", "2"],
               cwd=tmp_path, env=env)
    assert "walk" in out or "sit down" in out or "stand up" in out or "pick up" in out


def test_without_a_compiler_the_numpy_reader_is_used_and_said(venv, wheel_without_compiler, tmp_path):
    """The wheel built with CC=false has no extension; installed beside the venv's dependencies
    (``--target`` + PYTHONPATH), it reads NTU files with the numpy path, the same values, and says so."""
    import numpy as np

    from stgcn.data.formats.ntu import read_ntu, synthesize_skeleton_text

    names = zipfile.ZipFile(wheel_without_compiler).namelist()
    assert not [n for n in names if n.endswith(".so")]
    target = tmp_path / "nocc"
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--target", target,
          wheel_without_compiler])
    env = {**os.environ, "PYTHONPATH": str(target)}
    skel = tmp_path / "ntu" / "S001C001P001R001A001.skeleton"
    skel.parent.mkdir()
    skel.write_text(synthesize_skeleton_text(40, 2, np.random.default_rng(0)))
    py = [venv / "bin" / "python"]
    out = _run([*py, "-c", "import logging, sys, numpy; logging.basicConfig(level=logging.INFO); "
                "from stgcn.data.formats import ntu; assert ntu._ntu_fast is None, ntu.__file__; "
                f"[numpy.save(sys.argv[1] + str(i), ntu.read_ntu({str(skel)!r}).to_array()) for i in range(2)]",
                tmp_path / "x"], cwd=tmp_path, env=env)
    assert out.count("NTU reader: pure-Python/numpy path") == 1  # said once, for two files
    np.testing.assert_array_equal(np.load(tmp_path / "x0.npy"), read_ntu(skel).to_array())  # this process: C
    bench = _run([*py, "-m", "stgcn", "bench", "data", "--clips", "4", "--ntu-files", "1", "--loader-clips", "4",
                  "--loader-batches", "1", "--batch-size", "2", "--frames", "16", "--model-steps", "1",
                  "--workers", "1"], cwd=tmp_path, env=env)
    assert "reader: pure-Python/numpy path" in bench
    prep = _run([*py, "-m", "stgcn", "prepare", "ntu60", skel.parent, "--out", tmp_path / "store", "--no-progress"],
                cwd=tmp_path, env=env)
    assert prep.count("NTU reader: pure-Python/numpy path") == 1


def test_demo_runs_with_the_shipped_weights(venv, dists, tmp_path):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    if not [n for n in names if fnmatch.fnmatch(n, "stgcn/resources/pretrained/*.pt")]:
        pytest.skip("no shipped weights in this build yet (stgcn/resources/pretrained, from the shipped-weights "
                    "work of issue 17): `stgcn demo` without --checkpoint needs them")
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", f"{dists['wheel']}[video]"], timeout=900)
    out = _run([venv / "bin" / "stgcn", "demo", "--out", tmp_path / "demo.mp4", "--max-frames", "40"], cwd=tmp_path)
    assert "using the shipped model stgcn.utkinect" in out
    assert (tmp_path / "demo.mp4").stat().st_size > 0 and (tmp_path / "demo.json").is_file(), out
    assert json.loads((tmp_path / "demo.json").read_text())["frames"] == 40
