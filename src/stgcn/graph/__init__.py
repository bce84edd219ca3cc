"""Skeleton graphs: layouts (joints, bones, centre) and their partitioned adjacency (paper §3.3–3.4)."""

from .layouts import Layout, get_layout, list_layouts, load_layout_file
from .partition import CENTERS, NORMALIZATIONS, STRATEGIES, Graph, gravity_distances, hop_distance

__all__ = ["Layout", "get_layout", "list_layouts", "load_layout_file", "Graph", "gravity_distances",
           "hop_distance", "STRATEGIES", "NORMALIZATIONS", "CENTERS"]
