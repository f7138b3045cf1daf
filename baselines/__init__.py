"""The baselines (AdaIN, SANet, WCT) and the one place to build any method by name.

Importing this package registers every built-in method in :data:`safin.methods.METHODS`; methods of
other packages (plugins) are found by :func:`resolve` (:mod:`baselines.plugins`).
"""
from __future__ import annotations

from safin.methods import METHODS, StyleTransfer
from safin.models import SafinFinNet, SafinNet, SANetSAFIN

from .adaattn import AdaAttN
from .adain import AdaIN
from .plugins import PluginError, resolve
from .sanet import SANet
from .stytr2 import StyTr2
from .wct import WCT

#: the methods, in the order figures and tables show them
METHOD_NAMES = ("safin", "safin_fin", "sanet", "sanet_safin", "adain", "wct")
#: built-in methods beyond the paper's comparison (issue 33): buildable, stylize and their authors' releases; not
#: yet in the pipeline's profiles, the gate or the report
BEYOND_PAPER = ("adaattn", "stytr2")


def build(name: str, **kwargs) -> StyleTransfer:
    """Build method ``name``: a built-in (:data:`METHOD_NAMES`), an installed plugin's entry-point name, or
    ``package.module:Class`` (:mod:`baselines.plugins`); kwargs go to its constructor."""
    return resolve(name)(**kwargs)


__all__ = ["AdaAttN", "AdaIN", "BEYOND_PAPER", "SANet", "SANetSAFIN", "WCT", "SafinNet", "SafinFinNet", "StyTr2", "METHODS", "METHOD_NAMES", "PluginError",
           "build", "resolve"]
