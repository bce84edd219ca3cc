"""Reusable ST-GCN units: the spatial graph convolution, the temporal unit and the block, each with
its inference form (``fuse``)."""

from .block import STGCNBlock, TemporalUnit
from .gcn import FusedGraphConv, GraphConv, LocalGraphConv, graph_conv_reference

__all__ = ["GraphConv", "FusedGraphConv", "LocalGraphConv", "graph_conv_reference", "STGCNBlock", "TemporalUnit"]
