"""Reading ``params.yaml`` and switching profiles (``profiles/NAME.yaml``)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMS = Path("params.yaml")
PROFILES = Path("profiles")


def load_params(path: str | Path = PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no params file (run from the repository root, or pass --params)")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def profile_names(profiles_dir: Path = PROFILES) -> list[str]:
    return sorted(p.stem for p in profiles_dir.glob("*.yaml"))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def profile_keys(name: str, profiles_dir: Path = PROFILES) -> dict[str, Any]:
    """``{dotted.key: value}`` that profile ``name`` sets."""
    path = profiles_dir / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"unknown profile {name!r}; available: {', '.join(profile_names(profiles_dir))}")
    with open(path) as f:
        return _flatten(yaml.safe_load(f) or {})


def apply_profile(name: str, params_path: Path = PARAMS, profiles_dir: Path = PROFILES) -> dict[str, Any]:
    """Write profile ``name``'s values into ``params.yaml``, keeping its comments and layout."""
    from ruamel.yaml import YAML

    values = profile_keys(name, profiles_dir)
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    with open(params_path) as f:
        doc = rt.load(f)
    for dotted, value in values.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for p in parents:
            if p not in node:
                raise KeyError(f"profiles/{name}.yaml sets {dotted}, which {params_path} does not have")
            node = node[p]
        if leaf not in node:
            raise KeyError(f"profiles/{name}.yaml sets {dotted}, which {params_path} does not have")
        node[leaf] = value
    tmp = params_path.with_suffix(".yaml.tmp")
    with open(tmp, "w") as f:
        rt.dump(doc, f)
    tmp.replace(params_path)
    return values
