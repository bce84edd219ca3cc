"""Training and evaluation: ``train(cfg) -> RunResult``, ``evaluate(checkpoint, data, split)``.

>>> from stgcn.engine import load_recipe, apply_overrides, train
>>> cfg = load_recipe("small")
>>> cfg.data.path, cfg.data.train_split, cfg.data.val_split = "runs/data", "xsub_train", "xsub_test"
>>> result = train(cfg)            # doctest: +SKIP
>>> result.metrics["final"]["top1"]  # doctest: +SKIP

The functions share their names with their modules (``stgcn.engine.train``); they are imported
here eagerly so that the package attribute is always the function, whatever the import order.
"""

from __future__ import annotations

from .config import RunConfig, apply_overrides, list_recipes, load_recipe
from .evaluate import EvalResult, evaluate
from .train import RunResult, train, train_streams

__all__ = ["RunConfig", "load_recipe", "list_recipes", "apply_overrides", "train", "train_streams", "evaluate",
           "RunResult", "EvalResult"]
