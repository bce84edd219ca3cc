"""Compatibility with the official implementation (yysijie/st-gcn)."""

from .official import convert_official, load_official, official_state_dict

__all__ = ["load_official", "convert_official", "official_state_dict"]
