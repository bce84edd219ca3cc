"""Reusable ST-GCN units: the spatial graph convolution, the temporal unit and the block."""

from .block import STGCNBlock, TemporalUnit
from .gcn import GraphConv, LocalGraphConv, graph_conv_reference

__all__ = ["GraphConv", "LocalGraphConv", "graph_conv_reference", "STGCNBlock", "TemporalUnit"]
