"""Reading ``params.yaml`` and switching profiles (``profiles/NAME.yaml``)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMS = Path("params.yaml")
PROFILES = Path("profiles")


class ParamsError(KeyError):
    """A key the pipeline needs is not in ``params.yaml`` (misspelt, or removed)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Params(dict):
    """A section of ``params.yaml``: a missing key raises :class:`ParamsError` naming the file, the
    dotted key and the keys that are there that look like it (a misspelling)."""

    def __init__(self, data: Mapping, path: Path, prefix: str = ""):
        super().__init__({k: Params(v, path, f"{prefix}{k}.") if isinstance(v, Mapping) else v
                          for k, v in data.items()})
        self._path, self._prefix = path, prefix

    def __missing__(self, key):
        import difflib

        close = difflib.get_close_matches(str(key), [str(k) for k in self], n=2, cutoff=0.6)
        hint = f" (found {', '.join(self._prefix + c for c in close)}: misspelt?)" if close else ""
        raise ParamsError(f"{self._path}: {self._prefix}{key} is missing{hint}")


yaml.SafeDumper.add_representer(Params, lambda dumper, data: dumper.represent_dict(dict(data)))


def load_params(path: str | Path = PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no params file (run from the repository root, or pass --params)")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return Params(data, path)


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
        from ruamel.yaml.comments import CommentedSeq

        if isinstance(value, list):  # lists stay on one line, as params.yaml writes them (a block list
            value = CommentedSeq(value)  # replaced by ruamel loses its place next to a line comment)
            value.fa.set_flow_style()
        node[leaf] = value
    tmp = params_path.with_suffix(".yaml.tmp")
    with open(tmp, "w") as f:
        rt.dump(doc, f)
    tmp.replace(params_path)
    return values
