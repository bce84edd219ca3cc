"""Load checkpoints saved by the official ST-GCN code (yysijie/st-gcn, ``net/st_gcn.py``).

Our ``stgcn-official`` model uses the official module names, so the weights load key for key. What
this module adds: the ``module.`` prefix of DataParallel checkpoints is stripped (as the official
``load_weights`` does), ``num_batches_tracked`` keys missing from checkpoints of torch < 0.4.1 are
filled, the class count, input channels, subset count and edge importance are read from the weights,
and any mismatch is reported with the keys involved — nothing is loaded with strict=False.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load_state_dict_strict, safe_load, save_model
from ..errors import CheckpointError
from ..graph import Graph, get_layout

# Both official feeders (Kinetics-skeleton and NTU RGB+D) give the network 2 person slots and
# clips of up to 300 frames.
OFFICIAL_PERSONS = 2
OFFICIAL_CLIP_LEN = 300


def official_state_dict(obj: dict | str | Path) -> OrderedDict:
    """The plain state dict of an official checkpoint (path or loaded dict), prefixes stripped."""
    source = str(obj) if isinstance(obj, str | Path) else "state_dict"
    sd = safe_load(obj) if isinstance(obj, str | Path) else obj
    if isinstance(sd, dict) and "state_dict" in sd and not any(k.endswith("fcn.weight") for k in sd):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{source}: expected a state dict of tensors from the official code")
    return OrderedDict((k.split("module.")[-1], v) for k, v in sd.items())


# Keys every official ST-GCN state dict has: what tells one from other weights.
OFFICIAL_KEYS = ("fcn.weight", "data_bn.weight", "st_gcn_networks.0.gcn.conv.weight")


def is_official(sd: dict) -> bool:
    """Whether a plain state dict (prefixes stripped) has the keys of the official ST-GCN model."""
    return all(k in sd for k in OFFICIAL_KEYS)


def check_official_keys(sd: dict, source: str) -> None:
    for key in OFFICIAL_KEYS:
        if key not in sd:
            raise CheckpointError(f"{source}: not an official ST-GCN checkpoint (no {key!r})")


def official_graph_layouts(sd: dict, strategy: str = "spatial") -> list[str] | None:
    """The built-in layouts whose graph (with ``strategy``) is the checkpoint's ``A``: an official
    checkpoint names no layout, its adjacency does. None when the checkpoint keeps no ``A``."""
    from ..graph import list_layouts

    A = sd.get("A")
    if A is None:
        return None
    found = []
    for name in list_layouts():
        lay = get_layout(name)
        if lay.num_joints != A.shape[-1]:
            continue
        g = torch.as_tensor(Graph(lay, strategy).A, dtype=torch.float64)
        if g.shape == A.shape and torch.allclose(g, A.double(), atol=1e-6):
            found.append(lay.name)
    return found


def load_official(path_or_state_dict: dict | str | Path, *, layout: str, strategy: str = "spatial",
                  num_classes: int | None = None) -> nn.Module:
    """Our ``stgcn-official`` model, in eval mode, with the weights of an official checkpoint.

    Args:
        path_or_state_dict: a ``.pt``/``.pth`` file saved by the official code, or its state dict.
        layout: the graph layout the checkpoint was trained with (``openpose`` for Kinetics,
            ``ntu-rgb+d`` for NTU RGB+D).
        strategy: the partition strategy (all released models use ``spatial``).
        num_classes: checked against the classifier's size when given.
    """
    from ..models import create_model

    source = str(path_or_state_dict) if isinstance(path_or_state_dict, str | Path) else "state_dict"
    sd = official_state_dict(path_or_state_dict)
    check_official_keys(sd, source)
    lay = get_layout(layout)
    graph = Graph(lay, strategy)
    n_cls = sd["fcn.weight"].shape[0]
    if num_classes is not None and num_classes != n_cls:
        raise CheckpointError(f"{source}: num_classes={num_classes} was asked, the checkpoint has {n_cls} classes")
    w0 = sd["st_gcn_networks.0.gcn.conv.weight"]
    in_channels = w0.shape[1]
    if "A" in sd and tuple(sd["A"].shape) != tuple(graph.A.shape):
        raise CheckpointError(
            f"{source}: the checkpoint's graph A has shape {tuple(sd['A'].shape)} (K, V, V), but layout "
            f"{lay.name!r} with strategy {strategy!r} gives {tuple(graph.A.shape)}")
    v_ckpt = sd["data_bn.weight"].shape[0] // in_channels
    if v_ckpt != lay.num_joints:
        raise CheckpointError(f"{source}: the checkpoint is for {v_ckpt} joints, layout {lay.name!r} has "
                              f"{lay.num_joints}")
    edge_importance = any(k.startswith("edge_importance.") for k in sd)
    model = create_model("stgcn-official", layout=lay.name, strategy=strategy, num_classes=n_cls,
                         in_channels=in_channels, edge_importance=edge_importance)
    own = model.state_dict()
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    if "A" not in sd:
        sd["A"] = own["A"]
    # The official model computes with the A saved in its checkpoint; so do we (load_state_dict).
    load_state_dict_strict(model, sd, source)
    return model.eval()


def official_meta(model: nn.Module, source: str | Path = "", class_names: list[str] | None = None) -> dict:
    """The checkpoint meta of an official model (``load_official``): class names and the data contract.

    The contract follows the layout: the official models on a layout whose ``normalization`` is
    ``kinetics`` (``openpose``) are the Kinetics ones (pixels / image size, minus 0.5; 400 classes
    named by the packaged Kinetics-400 list); the others (NTU) take the coordinates as they are.
    """
    from ..contract import KINETICS_TEST_PIPELINE, DataContract, channel_names

    lay = model.layout
    n_cls = model.num_classes
    kinetics = lay.normalization == "kinetics"
    if class_names is None and kinetics and n_cls == 400:
        from ..resources import kinetics400_labels

        class_names = kinetics400_labels()
    if class_names is not None and len(class_names) != n_cls:
        raise CheckpointError(f"{len(class_names)} class names given for a model with {n_cls} classes")
    in_ch = int(model.config["params"]["in_channels"])
    contract = DataContract(layout=lay, num_persons=OFFICIAL_PERSONS, in_channels=in_ch,
                            channels=tuple(channel_names(in_ch, has_score=lay.dims == 2 and in_ch == 3)),
                            normalization=lay.normalization,
                            test_pipeline=KINETICS_TEST_PIPELINE if kinetics else (), clip_len=OFFICIAL_CLIP_LEN)
    return {"class_names": list(class_names or [str(i) for i in range(n_cls)]), "layout": lay.name,
            "stream": "joint", "source": f"official checkpoint {Path(source).name}" if source else "official",
            "data": contract.to_dict()}


def convert_official(src: str | Path, dst: str | Path, *, layout: str, strategy: str = "spatial",
                     class_names: list[str] | None = None) -> nn.Module:
    """Write an official checkpoint as an stgcn checkpoint (with class names and data contract)."""
    model = load_official(src, layout=layout, strategy=strategy)
    save_model(dst, model, official_meta(model, src, class_names))
    return model
