"""``stgcn bench data``: the data path measured against what it has to beat.

(a) NTU ``.skeleton`` parsing: ``stgcn.data.formats.ntu.read_ntu`` vs a straightforward
    line-by-line parser written below in the style of the official ``read_skeleton``/``read_xyz``
    (a dict per joint, ``float()`` per token), on generated files of 2 bodies and 100-300 frames.
(b) Peak memory of ``prepare`` on N generated NTU-sized clips (2 persons, 25 joints, 100-300
    frames), run in a fresh subprocess so that nothing else (torch) is counted; the main process
    and the loader workers are reported separately (``ru_maxrss``).
(c) Data-loader throughput (``stgcn.data.dataset``: SkeletonDataset, EpochBatchSampler, make_loader;
    2 persistent workers, a typical NTU pipeline) vs the training throughput of ``stgcn-official``
    (one SGD step at batch 8, T = 150), same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

PIPELINE = [{"name": "pre_normalize"}, {"name": "uniform_sample", "clip_len": 150},
            {"name": "random_move"}, {"name": "stream", "kind": "joint"}]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", type=int, default=10_000, help="generated clips to prepare for (b) (default 10000)")
    p.add_argument("--ntu-files", type=int, default=20, help="generated .skeleton files for (a) (default 20)")
    p.add_argument("--workers", type=int, default=2, help="prepare and DataLoader workers (default 2)")
    p.add_argument("--loader-clips", type=int, default=256, help="clips in the store read by (c)")
    p.add_argument("--loader-batches", type=int, default=60, help="batches timed in (c)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--frames", type=int, default=150, help="clip length fed to loader and model (T)")
    p.add_argument("--model-steps", type=int, default=3, help="timed training steps in (c)")
    p.add_argument("--tmp", default=None, help="scratch directory (default: a system temporary one)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")


# -- (a) NTU parsing -----------------------------------------------------------------------------

_BODY_KEYS = ["bodyID", "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
              "handRightState", "isResticted", "leanX", "leanY", "trackingState"]
_JOINT_KEYS = ["x", "y", "z", "depthX", "depthY", "colorX", "colorY", "orientationW", "orientationX",
               "orientationY", "orientationZ", "trackingState"]


def plain_read_ntu(path: str | Path, max_body: int = 2, num_joint: int = 25) -> np.ndarray:
    """The reference: official ``read_skeleton`` + ``read_xyz`` style, (3, T, 25, max_body)."""
    with open(path) as f:
        seq = {"numFrame": int(f.readline()), "frameInfo": []}
        for _ in range(seq["numFrame"]):
            frame = {"numBody": int(f.readline()), "bodyInfo": []}
            for _ in range(frame["numBody"]):
                body = {k: float(v) for k, v in zip(_BODY_KEYS, f.readline().split(), strict=False)}
                body["numJoint"] = int(f.readline())
                body["jointInfo"] = []
                for _ in range(body["numJoint"]):
                    joint = {k: float(v) for k, v in zip(_JOINT_KEYS, f.readline().split(), strict=False)}
                    body["jointInfo"].append(joint)
                frame["bodyInfo"].append(body)
            seq["frameInfo"].append(frame)
    data = np.zeros((3, seq["numFrame"], num_joint, max_body))
    for n, frame in enumerate(seq["frameInfo"]):
        for m, body in enumerate(frame["bodyInfo"]):
            for j, v in enumerate(body["jointInfo"]):
                if m < max_body and j < num_joint:
                    data[:, n, j, m] = [v["x"], v["y"], v["z"]]
    return data


def bench_parse(n_files: int, tmp: Path, rounds: int = 5) -> dict:
    try:
        from ..data.formats.ntu import read_ntu, reader_backend, synthesize_skeleton_text
    except ImportError as exc:
        return {"available": False, "why": f"stgcn.data.formats.ntu unavailable: {exc}"}
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n_files):
        p = tmp / f"S001C001P001R001A{k + 1:03d}.skeleton"
        p.write_text(synthesize_skeleton_text(int(rng.integers(100, 301)), 2, rng))
        paths.append(p)
    frames = sum(int(p.open().readline()) for p in paths)

    def once(fn):
        t0 = time.perf_counter()
        out = [fn(p) for p in paths]
        return time.perf_counter() - t0, out

    # interleaved rounds, medians: the machine is shared, so load changes hit both parsers alike
    times_ours, times_ref = [], []
    for _ in range(rounds):
        t, ours = once(read_ntu)
        times_ours.append(t)
        t, ref = once(plain_read_ntu)
        times_ref.append(t)
    t_ours, t_ref = float(np.median(times_ours)), float(np.median(times_ref))
    diff = max(float(np.abs(s.to_array()[:3] - r[..., :s.to_array().shape[3]]).max()) for s, r in zip(ours, ref,
                                                                                                     strict=True))
    return {"available": True, "reader": reader_backend(), "files": n_files, "frames": frames, "ours_s": t_ours,
            "plain_s": t_ref,
            "ours_ms_per_file": 1e3 * t_ours / n_files, "plain_ms_per_file": 1e3 * t_ref / n_files,
            "ratio": t_ref / t_ours, "rounds": rounds,
            "ratio_per_round": [r / o for r, o in zip(times_ref, times_ours, strict=True)], "max_abs_diff": diff}


# -- (b) prepare memory --------------------------------------------------------------------------

def SyntheticItem(name: str, path: str, label: int, splits: tuple[str, ...]):  # noqa: N802 - reads as a type
    from ..data.sources import SourceItem

    return SourceItem(name, path, label, splits, "synthetic")


class SyntheticSource:
    """NTU-sized generated clips: 2 persons, 25 joints, x/y/z, 100-300 frames."""

    def __init__(self, n: int):
        self.name, self.layout, self.meta, self.rejects = "synthetic", "ntu-rgb+d", {}, []
        self.class_names = [f"A{i + 1:03d}" for i in range(60)]
        self.split_names = ["train", "val"]
        self.items = [SyntheticItem(f"clip{i:06d}", f"<generated {i}>", i % 60, ("train",) if i % 5 else ("val",))
                      for i in range(n)]


def synthetic_load(item):
    from ..data.sample import Sample

    seed = zlib.crc32(item.name.encode())
    rng = np.random.default_rng(seed)
    t = 100 + seed % 201
    return Sample(keypoint=rng.standard_normal((2, t, 25, 3), dtype=np.float32), label=item.label, name=item.name)


def _memory_child(n: int, out: str, workers: int) -> None:
    """Runs in a fresh interpreter (see bench_memory); prints one JSON line."""
    import resource

    from ..data.prepare import prepare_source

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rep = prepare_source(SyntheticSource(n), out, workers=workers, loader=synthetic_load, progress=False,
                         source_info={"format": "synthetic"})
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    size = os.path.getsize(Path(out) / "data.npy")
    print(json.dumps({"clips": rep.clips, "frames": rep.frames, "seconds": rep.seconds, "store_bytes": size,
                      "rss_start_mb": base / 1024, "rss_main_mb": self_kb / 1024,
                      "rss_worker_mb": child_kb / 1024}))


def bench_memory(n: int, workers: int, tmp: Path) -> dict:
    out = tmp / "mem_store"
    code = f"from stgcn.bench.data import _memory_child; _memory_child({n}, {str(out)!r}, {workers})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"available": False, "why": proc.stderr.strip()[-2000:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["peak_mb"] = max(res["rss_main_mb"], res["rss_worker_mb"])
    res["clips_per_s"] = res["clips"] / res["seconds"]
    res["available"] = True
    return res


# -- (c) loader vs model -------------------------------------------------------------------------

def bench_loader(args: argparse.Namespace, tmp: Path) -> dict:
    import torch

    from ..data.dataset import EpochBatchSampler, SkeletonDataset, make_loader
    from ..data.prepare import prepare_source
    from ..data.transforms import build_pipeline

    store_dir = tmp / "loader_store"
    prepare_source(SyntheticSource(args.loader_clips), store_dir, workers=1, loader=synthetic_load,
                   progress=False, source_info={"format": "synthetic"})
    specs = [dict(s) for s in PIPELINE]
    specs[1]["clip_len"] = args.frames
    ds = SkeletonDataset(store_dir, transform=build_pipeline(specs, layout="ntu-rgb+d"), seed=0)
    # as in training: shuffled full batches, the epoch carried by the sampler to persistent workers
    sampler = EpochBatchSampler(args.batch_size)
    dl = make_loader(ds, sampler, args.workers, seed=0)
    shuffle = np.random.default_rng(0)
    full = len(ds) // args.batch_size * args.batch_size
    epoch = 0
    sampler.set_order(shuffle.permutation(len(ds))[:full], epoch)
    it = iter(dl)
    next(it)  # worker start-up is not throughput
    n = 0
    t0 = time.perf_counter()
    while n < args.loader_batches:
        try:
            x, _, _ = next(it)
        except StopIteration:
            epoch += 1
            sampler.set_order(shuffle.permutation(len(ds))[:full], epoch)
            it = iter(dl)
            continue
        n += 1
    dt = time.perf_counter() - t0
    res = {"pipeline": specs, "workers": args.workers, "batch_size": args.batch_size,
           "batches_per_s": n / dt, "samples_per_s": n * args.batch_size / dt, "batch_shape": list(x.shape)}
    del it, dl

    try:
        from .. import create_model

        model = create_model("stgcn-official", layout="ntu-rgb+d", num_classes=60)
    except Exception as exc:  # the model module may not be there in every build
        res["model"] = {"available": False, "why": f"{type(exc).__name__}: {exc}"}
        return res
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.frames, 25, 2)
    y = torch.randint(0, 60, (args.batch_size,))
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.model_steps):
        step()
    dt = time.perf_counter() - t0
    res["model"] = {"available": True, "name": "stgcn-official", "threads": torch.get_num_threads(),
                    "steps_per_s": args.model_steps / dt,
                    "samples_per_s": args.model_steps * args.batch_size / dt}
    res["ratio"] = res["samples_per_s"] / res["model"]["samples_per_s"]
    return res


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="stgcn-bench-data-") as d:
        tmp = Path(d)
        (tmp / "ntu").mkdir()
        results = {"parse": bench_parse(args.ntu_files, tmp / "ntu"),
                   "prepare_memory": bench_memory(args.clips, args.workers, tmp),
                   "loader": bench_loader(args, tmp)}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    p, m, lo = results["parse"], results["prepare_memory"], results["loader"]
    print("(a) NTU .skeleton parsing, generated files (2 bodies, 100-300 frames)")
    if p["available"]:
        print(f"    reader: {p['reader']}")
        print(f"    read_ntu {p['ours_ms_per_file']:.2f} ms/file, plain line-by-line {p['plain_ms_per_file']:.1f} "
              f"ms/file over {p['files']} files (medians of {p['rounds']} interleaved rounds) -> {p['ratio']:.1f}x "
              f"(target >= 20x; per round {min(p['ratio_per_round']):.1f}-{max(p['ratio_per_round']):.1f}x); "
              f"max |diff| {p['max_abs_diff']:.2g}")
    else:
        print(f"    unavailable: {p['why']}")
    print(f"(b) prepare {args.clips} generated clips with {args.workers} workers")
    if m["available"]:
        print(f"    peak RSS main {m['rss_main_mb']:.0f} MB, per worker {m['rss_worker_mb']:.0f} MB (target < 1024 "
              f"MB); {m['clips_per_s']:.0f} clips/s; store {m['store_bytes'] / 2**20:.0f} MB")
    else:
        print(f"    failed: {m['why']}")
    print(f"(c) data loader ({lo['workers']} workers, batch {lo['batch_size']}, "
          f"{' -> '.join(s['name'] for s in lo['pipeline'])})")
    print(f"    {lo['batches_per_s']:.1f} batches/s, {lo['samples_per_s']:.0f} samples/s")
    if lo["model"]["available"]:
        print(f"    stgcn-official training ({lo['model']['threads']} threads): "
              f"{lo['model']['samples_per_s']:.1f} samples/s -> loader/model {lo['ratio']:.1f}x (target >= 10x)")
    else:
        print(f"    model unavailable: {lo['model']['why']}")
    return 0
