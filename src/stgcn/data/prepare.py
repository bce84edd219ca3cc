"""`stgcn prepare`: raw dataset files -> a prepared store (see :mod:`stgcn.data.store`).

How it stays within memory, survives a kill and never shows a half-written store:

* Items are loaded by worker processes (``load_item``) a few at a time; results come back in input
  order and each clip's frames are appended to the current chunk file as they arrive. Only the
  clips in flight are in memory, never the dataset.
* Chunks of ``chunk_size`` items are the unit of work. A finished chunk is renamed into place and
  then recorded as one line of ``.partial/journal.jsonl`` (fsynced). Re-running the same command
  reads the journal and loads only the items of unfinished chunks. A plan fingerprint (format,
  source, options, item list) makes sure a journal is only reused for the same job.
* The store is assembled in ``.partial/final/`` and moved into ``out_dir`` only when complete; the
  ``COMPLETE`` marker is written last. A failure before that leaves a previous store untouched.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_save_npy, atomic_write_text, fsync_dir
from ..errors import DataError, StgcnError
from .sample import channel_names
from .store import FILES, FORMAT_NAME, FORMAT_VERSION, MARKER, layout_fields

PARTIAL = ".partial"
JOURNAL = "journal.jsonl"
PLAN = "plan.json"
_TASK_ITEMS = 8  # items per worker task: amortises inter-process overhead, keeps few clips in flight


class PrepareError(StgcnError, OSError):
    """Writing the store failed (disk full, permissions...); the message says what to do."""


@dataclass
class Report:
    """What a prepare run did. ``processed`` counts the items loaded by this run (fewer than
    ``clips + rejected`` when it resumed an interrupted run)."""

    out_dir: Path
    clips: int
    rejected: int
    frames: int
    persons: int
    processed: int
    reused_chunks: int
    total_chunks: int
    seconds: float
    rejects: list[tuple[str, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"prepared {self.clips} clips, rejected {self.rejected} (see {self.out_dir / 'rejects.csv'})"


def prepare(fmt: str, source_path: str | Path | None, out_dir: str | Path, *, workers: int = 2,
            max_persons: int | None = None, chunk_size: int = 256, progress: bool = True,
            **options: Any) -> Report:
    """Read dataset ``fmt`` at ``source_path`` with its reader (``options`` go to the reader) and
    write the prepared store to ``out_dir``. Bad files are listed in ``rejects.csv``, never fatal."""
    try:
        from .sources import load_item, open_source
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.sources":
            raise
        raise StgcnError("the dataset readers (stgcn.data.sources) are not part of this build") from None
    source = open_source(fmt, source_path, **options)
    if options.get("layout") is not None:  # recorded as its name or table: a YAML path is not kept
        from ..graph import get_layout

        options = {**options, "layout": get_layout(options["layout"]).ref}
    info = {"format": fmt, "path": None if source_path is None else str(Path(source_path).resolve()),
            "options": options}
    return prepare_source(source, out_dir, workers=workers, loader=load_item, source_info=info,
                          max_persons=max_persons, chunk_size=chunk_size, progress=progress)


def prepare_source(source: Any, out_dir: str | Path, *, workers: int = 2,
                   loader: Callable[[Any], Any] | None = None, source_info: dict | None = None,
                   max_persons: int | None = None, chunk_size: int = 256, progress: bool = True,
                   mp_context: str | None = None) -> Report:
    """Prepare from an opened source (``stgcn.data.sources.DatasetSource`` or any object with the
    same fields). ``loader(item) -> Sample`` must be picklable when ``workers > 1``."""
    if loader is None:
        from .sources import load_item as loader
    if chunk_size < 1:
        raise StgcnError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_persons is not None and max_persons < 1:
        raise StgcnError(f"max_persons must be >= 1, got {max_persons}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PrepareError(errno.ENOTDIR, f"{out} exists and is not a directory")
    partial = out / PARTIAL
    items = list(source.items)
    info = dict(source_info or {})
    num_chunks = (len(items) + chunk_size - 1) // chunk_size
    fingerprint = _fingerprint(info, items, chunk_size, max_persons)

    try:
        done = _open_journal(partial, fingerprint, len(items), chunk_size)
        reused = len(done)
        expected_v = _layout_joints(getattr(source, "layout", None))
        first = next((e for k in sorted(done) for e in done[k]["clips"]), None)
        shape_vc = (first["V"], first["C"]) if first else None
        pending = [k for k in range(num_chunks) if k not in done]
        processed = 0
        bar = _progress(progress, total=len(items), initial=sum(_chunk_items(k, chunk_size, len(items))
                                                                for k in done))
        try:
            results = _load_all(items, pending, chunk_size, loader, max_persons, workers, mp_context)
            n_classes = len(getattr(source, "class_names", None) or [])
            try:
                for k in pending:
                    entry, shape_vc = _write_chunk(partial, k, _chunk_items(k, chunk_size, len(items)),
                                                   results, shape_vc, expected_v, n_classes, bar)
                    processed += _chunk_items(k, chunk_size, len(items))
                    done[k] = entry
            finally:
                results.close()
        finally:
            if bar is not None:
                bar.close()
        report = _finalize(out, partial, source, items, info, done, num_chunks, max_persons)
    except OSError as exc:
        if isinstance(exc, PrepareError):
            raise
        raise PrepareError(exc.errno or errno.EIO,
                           f"writing the store failed: {exc.strerror or exc} ({exc.filename or out}). "
                           f"Nothing in {out} was replaced (a previous store there is intact); finished "
                           f"chunks are kept in {partial}: fix the problem and run the same command again "
                           f"to resume") from exc
    report.processed = processed
    report.reused_chunks = reused
    report.seconds = time.perf_counter() - t0
    return report


# -- plan and journal ------------------------------------------------------------------------------

def _fingerprint(info: dict, items: Sequence[Any], chunk_size: int, max_persons: int | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"info": info, "chunk_size": chunk_size, "max_persons": max_persons,
                         "version": FORMAT_VERSION}, sort_keys=True, default=str).encode())
    for it in items:
        h.update(json.dumps([it.name, str(it.path), it.label, list(it.splits)], default=str).encode())
    return h.hexdigest()


def _chunk_items(k: int, chunk_size: int, n: int) -> int:
    return min(chunk_size, n - k * chunk_size)


def _open_journal(partial: Path, fingerprint: str, n_items: int, chunk_size: int) -> dict[int, dict]:
    """Finished chunks of a previous run of the same job ({chunk index: journal entry}); starts a
    fresh ``.partial`` when there is none or it belongs to another job."""
    plan_path = partial / PLAN
    if plan_path.is_file():
        try:
            plan = json.loads(plan_path.read_text())
        except ValueError:
            plan = {}
        if plan.get("fingerprint") == fingerprint:
            return _read_journal(partial, chunk_size)
        print(f"stgcn prepare: {partial} belongs to a different job (other source, options or files); "
              "starting over", file=sys.stderr)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    atomic_write_text(plan_path, json.dumps({"fingerprint": fingerprint, "items": n_items,
                                             "chunk_size": chunk_size}))
    (partial / JOURNAL).touch()
    return {}


def _read_journal(partial: Path, chunk_size: int) -> dict[int, dict]:
    done: dict[int, dict] = {}
    path = partial / JOURNAL
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: that chunk is simply redone
        chunk_file = partial / entry["file"]
        if chunk_file.is_file() and chunk_file.stat().st_size == entry["bytes"]:
            done[int(entry["chunk"])] = entry
    return done


# -- loading ---------------------------------------------------------------------------------------

def _load_batch(loader: Callable[[Any], Any], batch: list[tuple[int, Any]],
                max_persons: int | None) -> list[tuple]:
    """Worker side: load items and convert them to the stored form (T, M, V, C) float32."""
    out = []
    for idx, item in batch:
        try:
            s = loader(item)
            x = s.to_array()  # (C, T, V, M)
            has_score = s.score is not None and s.keypoint.shape[3] == 2
            frames = x.transpose(1, 3, 2, 0)  # (T, M, V, C)
            if max_persons is not None and frames.shape[1] > max_persons:
                frames = frames[:, :max_persons]
            label = s.label if s.label is not None else getattr(item, "label", None)
            out.append((idx, "ok", s.name or item.name, -1 if label is None else int(label),
                        np.ascontiguousarray(frames, dtype=np.float32), bool(has_score)))
        except DataError as exc:
            out.append((idx, "err", exc.file or str(item.path), "" if exc.record is None else str(exc.record),
                        exc.reason))
        except Exception as exc:  # a reader bug must not stop a 60k-file job; it is reported as such
            out.append((idx, "err", str(getattr(item, "path", item)), "",
                        f"unexpected {type(exc).__name__} in the reader (please report): {exc}"))
    return out


def _batches(items: Sequence[Any], pending: Iterable[int], chunk_size: int) -> Iterator[list[tuple]]:
    n = len(items)
    for k in pending:
        lo, hi = k * chunk_size, min(n, (k + 1) * chunk_size)
        for b in range(lo, hi, _TASK_ITEMS):
            yield [(i, items[i]) for i in range(b, min(hi, b + _TASK_ITEMS))]


def _load_all(items, pending, chunk_size, loader, max_persons, workers, mp_context) -> Iterator[tuple]:
    """Results in input order. At most ``4 * workers`` tasks are in flight, which bounds memory
    even when the workers outpace the writer."""
    batches = _batches(items, pending, chunk_size)
    if workers <= 1:
        for batch in batches:
            yield from _load_batch(loader, batch, max_persons)
        return
    method = mp_context or ("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        window: deque = deque()
        try:
            for batch in batches:
                window.append(pool.submit(_load_batch, loader, batch, max_persons))
                if len(window) >= 4 * workers:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        finally:
            for fut in window:  # the writer stopped (error or close): drop queued work
                fut.cancel()


def _layout_joints(layout: str | None) -> int | None:
    if not layout:
        return None
    try:
        from ..graph import get_layout

        return get_layout(layout).num_joints
    except Exception:  # a custom or unknown layout name: the first clip then sets the joint count
        return None


# -- writing ---------------------------------------------------------------------------------------

def _write_chunk(partial: Path, k: int, n_expected: int, results: Iterator[tuple], shape_vc, expected_v,
                 n_classes, bar) -> tuple[dict, tuple[int, int] | None]:
    """Append the chunk's clips to ``chunk_<k>.bin`` as they arrive, then rename it and journal it."""
    name = f"chunk_{k:06d}.bin"
    tmp = partial / f".{name}.tmp"
    clips: list[dict] = []
    rejects: list[list[str]] = []
    nbytes = 0
    n_items = 0
    try:
        with open(tmp, "wb") as f:
            for res in results:
                n_items += 1
                idx = res[0]
                if res[1] == "ok":
                    _, _, cname, label, frames, has_score = res
                    t, m, v, c = frames.shape
                    problem = None
                    if expected_v is not None and v != expected_v:
                        problem = f"has {v} joints, the dataset's layout has {expected_v}"
                    elif shape_vc is not None and (v, c) != tuple(shape_vc):
                        problem = (f"has {v} joints x {c} channels, the first clip of the dataset has "
                                   f"{shape_vc[0]} x {shape_vc[1]}")
                    elif n_classes and not -1 <= label < n_classes:
                        problem = f"label {label} is outside the {n_classes} classes"
                    if problem:
                        rejects.append([cname, "", problem])
                    else:
                        shape_vc = (v, c)
                        f.write(frames.tobytes())
                        nbytes += frames.nbytes
                        clips.append({"item": idx, "name": cname, "label": label, "T": t, "M": m,
                                      "V": v, "C": c, "score": has_score})
                else:
                    _, _, file, record, reason = res
                    rejects.append([file, record, reason])
                if bar is not None:
                    bar.update(1)
                if n_items == n_expected:
                    break
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, partial / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    entry = {"chunk": k, "file": name, "bytes": nbytes, "clips": clips, "rejects": rejects}
    with open(partial / JOURNAL, "a", encoding="utf-8") as j:
        j.write(json.dumps(entry, separators=(",", ":")) + "\n")
        j.flush()
        os.fsync(j.fileno())
    return entry, shape_vc


def _write_npy_header(f, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                             "fortran_order": False, "shape": shape})


def _finalize(out: Path, partial: Path, source, items, info, done: dict[int, dict], num_chunks: int,
              max_persons: int | None) -> Report:
    """Assemble the journalled chunks into a complete store in ``partial/final``, then swap it into
    ``out``. Raises DataError (and writes nothing to ``out``) when no clip survived."""
    entries = [done[k] for k in range(num_chunks)]
    clips = [c for e in entries for c in e["clips"]]
    rejects = [(str(f), "", str(reason)) for f, reason in (getattr(source, "rejects", None) or [])]
    rejects += [tuple(r) for e in entries for r in e["rejects"]]
    if not clips:
        shown = "; ".join(f"{f}: {reason}" for f, _, reason in rejects[:5]) or "the source lists no item"
        raise DataError(f"no usable clip ({len(rejects)} rejected): {shown}", file=str(info.get("path")))
    lengths = np.array([c["T"] for c in clips], dtype=np.int64)
    persons = max_persons or max(c["M"] for c in clips)
    v, c_ = clips[0]["V"], clips[0]["C"]
    total = int(lengths.sum())

    final = partial / "final"
    if final.exists():
        shutil.rmtree(final)
    final.mkdir()
    _write_data(final / "data.npy", partial, entries, (total, persons, v, c_))
    atomic_save_npy(final / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    atomic_save_npy(final / "labels.npy", np.array([c["label"] for c in clips], dtype=np.int64))
    atomic_write_text(final / "names.json", json.dumps([c["name"] for c in clips]))
    split_names = list(getattr(source, "split_names", None) or [])
    splits: dict[str, list[int]] = {s: [] for s in split_names}
    for j, c in enumerate(clips):
        for s in items[c["item"]].splits:
            splits.setdefault(s, []).append(j)
    atomic_write_text(final / "splits.json", json.dumps(splits))
    counts = {"clips": len(clips), "frames": total, "rejected": len(rejects), "persons": persons,
              "joints": v, "channels": c_, "splits": {k: len(s) for k, s in splits.items()}}
    meta = _store_meta(source, info, max_persons, channel_names(c_ - clips[0]["score"], clips[0]["score"]), counts)
    atomic_write_text(final / "meta.json", json.dumps(meta, indent=1, default=str))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "record", "reason"])
    w.writerows(rejects)
    atomic_write_text(final / "rejects.csv", buf.getvalue())
    fsync_dir(final)
    _swap_in(final, out, json.dumps({"clips": len(clips), "created": meta["created"]}) + "\n")
    shutil.rmtree(partial, ignore_errors=True)
    return Report(out_dir=out, clips=len(clips), rejected=len(rejects), frames=total, persons=persons,
                  processed=0, reused_chunks=0, total_chunks=num_chunks, seconds=0.0, rejects=rejects)


def _write_data(path: Path, partial: Path, entries: list[dict], shape: tuple[int, int, int, int]) -> None:
    """Concatenate the chunk files into ``data.npy`` of ``shape`` (frames, persons, V, C), each clip's
    persons zero-padded to the store's. Plain appends instead of a writable memmap: dirty mapped
    pages would count in the resident size and grow with the dataset."""
    _total, persons, v, c_ = shape
    with open(path, "wb") as f:
        _write_npy_header(f, shape)
        for e in entries:
            if not e["clips"]:
                continue
            raw = np.fromfile(partial / e["file"], dtype=np.float32)
            t_chunk = sum(c["T"] for c in e["clips"])
            if all(c["M"] == persons for c in e["clips"]):
                f.write(raw.tobytes())
                continue
            buf = np.zeros((t_chunk, persons, v, c_), dtype=np.float32)
            pos = row = 0
            for c in e["clips"]:
                size = c["T"] * c["M"] * v * c_
                buf[row:row + c["T"], :c["M"]] = raw[pos:pos + size].reshape(c["T"], c["M"], v, c_)
                pos += size
                row += c["T"]
            f.write(buf.tobytes())
        f.flush()
        os.fsync(f.fileno())


def _store_meta(source, info, max_persons: int | None, channels: list[str], counts: dict) -> dict:
    """The store's ``meta.json``: format, layout, classes, where it came from and what it holds."""
    from .. import __version__

    return {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "stgcn_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "name": getattr(source, "name", None), **layout_fields(getattr(source, "layout", None)),
        "class_names": list(getattr(source, "class_names", None) or []),
        "source": info, "source_meta": getattr(source, "meta", None) or {},
        "preprocessing": {"max_persons": max_persons, "persons": "zero-padded to the dataset's maximum"
                          if max_persons is None else f"first {max_persons} kept, zero-padded"},
        "channels": channels, "dtype": "float32", "axes": ["frame", "person", "joint", "channel"],
        "counts": counts,
    }


def _swap_in(final: Path, out: Path, marker_text: str) -> None:
    """Move the complete store from ``final`` into ``out``. The old marker goes first, so a kill in
    the middle leaves a store that is refused (and resumable from the journal), never a mix of old
    and new files that looks complete."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    fsync_dir(out)
    for name in FILES:
        os.replace(final / name, out / name)
    fsync_dir(out)
    atomic_write_text(out / MARKER, marker_text)
    fsync_dir(out)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="clip", desc="prepare", smoothing=0.1, file=sys.stderr)
