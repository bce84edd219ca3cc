"""Reproducing a shipped model: ``stgcn models NAME --reproduce [--install]``.

One command from the bundled data to the files the package ships (:mod:`stgcn.models.pretrained`):
prepare the spec's bundled dataset, train with its recipe and seed, evaluating once, after the last
epoch (so the checkpoint kept is the final model, never an epoch picked on the test split), write
the weights as a plain stgcn checkpoint (model config, fp32 state_dict, a meta holding the data
contract and label names, nothing of the optimiser), evaluate that file as ``stgcn eval`` does, and
write its card (``NAME.json``: sha256, accuracy, contract, command; ``NAME.md`` for people). With
``install`` the three files are copied into ``stgcn/resources/pretrained/``.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import time
from pathlib import Path

from .models.pretrained import CARD_VERSION, PretrainedConfig, PretrainedSpec, get_spec, pretrained_dir, sha256_file

# Training threads of every build: float sums depend on the thread count, so fixing it is what makes
# a rebuild give the same weights on another machine with the same torch.
BUILD_THREADS = 1
# The meta entries inference needs; the rest of a training meta (store meta, run config) goes to the card.
_META_KEYS = ("class_names", "layout", "stream", "in_channels", "recipe")


def build_command(spec: PretrainedSpec, recipe: str | None = None, install: bool = True) -> str:
    """The command line that rebuilds ``spec`` (what the card records)."""
    argv = ["stgcn", "models", spec.name, "--reproduce"] + (["--recipe", recipe] if recipe else [])
    return shlex.join(argv + (["--install"] if install else []))


def reproduce(name: str, out: str | Path, *, recipe: str | None = None, install: bool = False,
              progress: bool = True, num_workers: int = 2) -> PretrainedConfig:
    """Build the shipped model ``name`` in ``out`` (data, train run, weights, card); with ``install``
    copy the weights and card into the package. ``recipe`` replaces the spec's recipe."""
    from .data.prepare import prepare
    from .data.store import open_store
    from .engine import evaluate, train
    from .runtime import flushing_denormals

    spec = get_spec(name)
    out = Path(out)
    data = out / "data"
    try:
        open_store(data)
    except Exception:  # noqa: BLE001 - not prepared yet (or incomplete): prepare resumes/rebuilds it
        prepare(spec.dataset, None, data)
    cfg = _train_config(spec, recipe, data, out / "train", num_workers)
    t0 = time.perf_counter()
    with flushing_denormals():
        res = train(cfg)
    wall = time.perf_counter() - t0
    if res.metrics["best"]["epoch"] != cfg.train.epochs:
        raise RuntimeError(f"{res.best_checkpoint} is not the final epoch's model")  # eval_every guarantees it
    weights = write_weights(res.best_checkpoint, out / spec.file, spec)
    ev = evaluate(weights, data, spec.test_split, num_workers=num_workers, progress=progress)
    correct = int((ev.scores.argmax(1) == ev.labels).sum())
    card = {
        "card_version": CARD_VERSION, "name": spec.name, "file": spec.file, "sha256": sha256_file(weights),
        "size_bytes": weights.stat().st_size, "command": build_command(spec, recipe),
        "label_names": list(ev.class_names), "data": _load_meta(weights)["data"],
        "model_config": _load_model_config(weights),
        "accuracy": {"top1": correct / len(ev.labels), "top5": ev.metrics["top5"],
                     "mean_class_acc": ev.metrics["mean_class_acc"], "correct": correct, "total": len(ev.labels),
                     "split": spec.test_split, "protocol": spec.protocol},
        "training": {"recipe": recipe or spec.recipe, "seed": spec.seed, "threads": BUILD_THREADS,
                     "wall_s": round(wall, 1), "torch": _torch_version(), "python": platform.python_version(),
                     "config": cfg.to_dict()},
    }
    from .atomic import atomic_write_text

    atomic_write_text(spec.card_path(out), json.dumps(card, indent=1) + "\n")
    config = PretrainedConfig.from_card(spec, out)
    atomic_write_text(out / f"{spec.name}.md", card_markdown(config))
    if install:
        target = pretrained_dir()
        target.mkdir(parents=True, exist_ok=True)
        for f in (spec.file, f"{spec.name}.json", f"{spec.name}.md"):  # weights first: the card names them
            _copy_atomic(out / f, target / f)
        config = PretrainedConfig.from_card(spec)
    config.verified_path()
    return config


def _train_config(spec: PretrainedSpec, recipe: str | None, data: Path, out: Path, num_workers: int):
    from .engine.config import apply_overrides, load_recipe

    cfg = load_recipe(recipe or spec.recipe)
    cfg.data.path = str(data)
    cfg.data.train_split, cfg.data.val_split = spec.train_split, spec.test_split
    cfg.data.num_workers = num_workers
    cfg.train.out = str(out)
    cfg.train.overwrite = True
    cfg.train.seed = spec.seed
    cfg.train.num_threads = BUILD_THREADS
    cfg = apply_overrides(cfg, list(spec.overrides))
    cfg.train.eval_every = cfg.train.epochs  # one evaluation, after the last epoch
    return cfg.validate()


def write_weights(checkpoint: Path, path: Path, spec: PretrainedSpec) -> Path:
    """The shipped file from a training checkpoint: model config, fp32 weights, the inference meta."""
    from .checkpoint import FORMAT, FORMAT_VERSION, atomic_torch_save, safe_load

    ckpt = safe_load(checkpoint)
    meta = ckpt["meta"]
    data = {k: v for k, v in meta["data"].items() if k != "store_meta"}
    slim = {"format": FORMAT, "version": FORMAT_VERSION, "model_config": ckpt["model_config"],
            "state_dict": {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()},
            "meta": {**{k: meta[k] for k in _META_KEYS if k in meta}, "data": data, "pretrained": spec.name}}
    atomic_torch_save(slim, path)
    return path


def _load_meta(path: Path) -> dict:
    from .checkpoint import safe_load

    return safe_load(path)["meta"]


def _load_model_config(path: Path) -> dict:
    from .checkpoint import safe_load

    return safe_load(path)["model_config"]


def _torch_version() -> str:
    import torch

    return torch.__version__


def _copy_atomic(src: Path, dst: Path) -> None:
    from .atomic import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def card_markdown(cfg: PretrainedConfig) -> str:
    """The model card for people (``NAME.md``), from the JSON card and the spec."""
    s, a, d = cfg.spec, cfg.accuracy, cfg.data
    params = cfg.model_config["params"]
    lines = [
        f"# {s.name}: shipped ST-GCN weights", "",
        f"{s.architecture} ({', '.join(map(str, params['channels']))} channels, {params['strategy']} partition) "
        f"trained on the bundled {s.dataset} data; the default model of `stgcn demo`, `predict` and `serve` "
        "when no `--checkpoint` is given.", "",
        "| | |", "| --- | --- |",
        f"| file | `stgcn/resources/pretrained/{s.file}` ({cfg.size_bytes / 1e6:.2f} MB, fp32 state_dict) |",
        f"| sha256 | `{cfg.sha256}` (checked at every load) |",
        f"| layout | `{cfg.layout}` ({len(d['layout']['joints'])} joints), {d['num_persons']} person slot(s), "
        f"channels {', '.join(d['channels'])} |",
        f"| normalisation | `{d['normalization']}`; test pipeline "
        f"{', '.join(_spec_text(p) for p in d['test_pipeline'])}; {d['test_clips']} test clip(s) |",
        f"| clip length | {d['clip_len']} frames (the live window), a person needs {d['min_frames']} frames |",
        f"| labels ({len(cfg.label_names)}) | {', '.join(cfg.label_names)} |",
        f"| test accuracy | top-1 {100 * a['top1']:.1f} % ({a['correct']} / {a['total']}), top-5 "
        f"{100 * a['top5']:.1f} %, mean class {100 * a['mean_class_acc']:.1f} % on `{a['split']}` |",
        f"| protocol | {a['protocol']} |",
        f"| training | recipe `{cfg.training.get('recipe')}`, seed {cfg.training.get('seed')}, "
        f"{cfg.training.get('threads')} thread(s), {cfg.training.get('wall_s')} s, torch {cfg.training.get('torch')} |",
        f"| reproduce | `{cfg.command}` |",
        f"| licence | {s.licence} |",
        f"| data | {s.data_licence}; provenance: `stgcn/resources/{s.data_provenance}` |",
        f"| cite the data | {s.attribution} |",
        f"| cite the model | {s.paper} |", "",
        "Generated by `stgcn models NAME --reproduce` from the JSON card beside this file; edit neither by hand.",
        "",
    ]
    return "\n".join(lines)


def _spec_text(spec: dict) -> str:
    args = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"`{spec['name']}`" + (f" ({args})" if args else "")
