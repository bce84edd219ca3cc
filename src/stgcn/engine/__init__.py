"""Training and evaluation: ``train(cfg) -> RunResult``, ``evaluate(checkpoint, data, split)``.

>>> from stgcn.engine import load_recipe, apply_overrides, train
>>> cfg = load_recipe("small")
>>> cfg.data.path, cfg.data.train_split, cfg.data.val_split = "runs/data", "xsub_train", "xsub_test"
>>> result = train(cfg)            # doctest: +SKIP
>>> result.metrics["final"]["top1"]  # doctest: +SKIP

Modules: :mod:`.config` (the typed settings), :mod:`.training` (the loop), :mod:`.state` (what
``--resume`` continues from), :mod:`.optim`, :mod:`.runlock`, :mod:`.evaluate`, :mod:`.distributed`.
"""

from __future__ import annotations

from .config import RunConfig, apply_overrides, list_recipes, load_recipe
from .evaluate import EvalResult, evaluate
from .training import RunResult, train, train_ensemble, train_streams

__all__ = ["RunConfig", "load_recipe", "list_recipes", "apply_overrides", "train", "train_streams", "train_ensemble",
           "evaluate",
           "RunResult", "EvalResult"]
