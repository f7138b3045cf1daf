"""Stage ``check_methods`` (``safin check-methods``) and ``safin methods``: every method ``params.yaml``
names is resolved — a built-in or an installed plugin — and each plugin's contract is checked on tiny
images, before anything trains. One line per problem, naming the method; nothing else runs.

Writes ``outputs/methods/NAME.json`` per method (:func:`baselines.plugins.describe`: label, class,
distribution and version, a digest of its training code). ``train@NAME`` and ``stylize@NAME`` depend on
their method's file, and the stage always runs (DVC ``always_changed``), so a plugin that is upgraded
re-runs its own stages and no other.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .method_info import METHODS_DIR

#: names that cannot be methods: they are folders of the stylize stage's output
RESERVED = {"inputs"}


def named_methods(params: dict) -> tuple[list[str], list[str]]:
    """(every method the stages use, in first-mention order; problems with how the lists fit together)."""
    train, stylize = list(params["train"]["methods"]), list(params["stylize"]["methods"])
    bench, survey = list(params["benchmark"]["methods"]), list(params["survey"]["methods"])
    problems = [f"params.yaml: stylize.methods has {m!r}, which train.methods does not train (add it there)"
                for m in stylize if m not in train]
    problems += [f"params.yaml: survey.methods has {m!r}, which stylize.methods does not stylize (add it there)"
                 for m in survey if m not in stylize]
    names = list(dict.fromkeys([*train, *stylize, *bench]))
    problems += [f"params.yaml: {m!r} cannot be a method's name (reserved)" for m in names if m in RESERVED]
    problems += [f"params.yaml: {m!r}: name installed plugins by their entry-point name in params.yaml; "
                 "package.module:Class is for one-off commands" for m in names if ":" in m]
    return names, problems


def check(params: dict, out: Path = METHODS_DIR) -> int:
    from baselines.plugins import PluginError, check_methods, is_builtin, resolve

    from safin.io.files import atomic_write_text
    from safin.io.weights import ensure_encoder_weights

    names, problems = named_methods(params)
    classes = []
    for name in names:  # first what imports (no weights needed to say a plugin is broken)
        try:
            classes.append(resolve(name))
        except PluginError as e:
            problems.append(str(e))
    if not problems:
        weights = str(params["train"]["encoder_weights"])
        if not all(map(is_builtin, classes)):  # the contract check runs the plugins
            ensure_encoder_weights(weights)
        info, problems = check_methods(names, weights)
    if problems:
        for p in problems:
            print(f"safin check-methods: {p}", file=sys.stderr)
        print(f"safin check-methods: {len(problems)} problem(s); nothing was trained or stylized", file=sys.stderr)
        return 2
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        if stale.stem not in info:
            stale.unlink()
    for name, doc in info.items():
        atomic_write_text(out / f"{name}.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")
    for name, doc in info.items():
        origin = "built in" if doc["builtin"] else f"plugin {doc['distribution'] or doc['class']} {doc['version'] or ''}"
        print(f"{name:<14} {doc['label']:<28} {origin.strip()}")
    return 0


def list_methods() -> list[dict]:
    """Every method available here: the built-ins and every installed plugin (a plugin that fails to
    import is listed with its problem)."""
    from baselines.plugins import PluginError, _entry_points, builtin_names, describe, resolve

    from importlib.metadata import packages_distributions

    rows, packages = [], packages_distributions()
    for name in [*builtin_names(), *sorted(set(_entry_points()) - set(builtin_names()))]:
        try:
            rows.append(describe(resolve(name), packages))
        except PluginError as e:
            rows.append({"name": name, "problem": str(e)})
    return rows
