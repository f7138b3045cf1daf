"""The baselines (AdaIN, SANet, WCT) and the one place to build any method by name.

Importing this package registers every method in :data:`safin.methods.METHODS`.
"""
from __future__ import annotations

from safin.methods import METHODS, StyleTransfer
from safin.models import SafinFinNet, SafinNet, SANetSAFIN

from .adain import AdaIN
from .sanet import SANet
from .wct import WCT

#: the methods, in the order figures and tables show them
METHOD_NAMES = ("safin", "safin_fin", "sanet", "sanet_safin", "adain", "wct")


def build(name: str, **kwargs) -> StyleTransfer:
    """Build method ``name`` (see :data:`METHOD_NAMES`); kwargs go to its constructor."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](**kwargs)


__all__ = ["AdaIN", "SANet", "SANetSAFIN", "WCT", "SafinNet", "SafinFinNet", "METHODS", "METHOD_NAMES", "build"]
