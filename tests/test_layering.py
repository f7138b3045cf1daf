"""The dependency direction: pipeline -> evaluation, survey -> baselines -> safin; inside safin, the
layers below; no import cycle among safin's modules; no model constructor that downloads."""
import ast
from pathlib import Path

import pytest

from .conftest import REPO

FORBIDDEN = {
    "safin": {"baselines", "evaluation", "survey", "pipeline"},
    "baselines": {"evaluation", "survey", "pipeline"},
    "evaluation": {"pipeline", "survey"},
    "survey": {"pipeline", "torch", "torchvision", "safin", "baselines", "evaluation"},
}

#: inside safin: what each subpackage may import from safin (besides itself)
SAFIN_LAYERS = {
    "runtime": set(),
    "blocks": {"runtime"},
    "io": {"blocks", "runtime"},
    "methods": {"blocks", "runtime", "io"},
    "models": {"blocks", "runtime", "io", "methods"},
    "training": {"runtime", "blocks", "io", "methods"},  # blocks: the flatness line of the health probe
}


def imports(path: Path):
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def sources(package: str):
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package):
    bad = [(f.relative_to(REPO).as_posix(), m) for f in sources(package) for m in imports(f)
           if m.split(".")[0] in FORBIDDEN[package]]
    assert not bad, f"{package} imports {bad}"


def _layer(path: Path) -> str:
    rel = path.relative_to(REPO / "safin").with_suffix("").parts
    return rel[0]


def test_safin_subpackages_import_only_lower_layers():
    bad = []
    for f in sources("safin"):
        layer = _layer(f)
        if layer == "__init__":
            continue
        allowed = SAFIN_LAYERS[layer] | {layer}
        for m in imports(f):
            parts = m.split(".")
            if parts[0] == "safin" and len(parts) > 1 and parts[1] in SAFIN_LAYERS and parts[1] not in allowed:
                bad.append((f.relative_to(REPO).as_posix(), m))
    assert not bad, bad


def test_no_import_cycle_among_safin_modules():
    modules = {".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): f
               for f in sources("safin")}
    graph = {m: {i for i in imports(f) if i in modules and i != m} for m, f in modules.items()}
    # a package's __init__ re-exporting its modules is not a cycle through them
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(d):], d]))
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_encoder_no_longer_imports_the_weight_registry():
    assert not [m for m in imports(REPO / "safin/blocks/encoder.py") if m.startswith("safin.io")]


def test_building_a_model_never_downloads(tmp_path, monkeypatch):
    """With an empty cache, a default-argument constructor fails with the command to run; nothing is
    downloaded or derived."""
    import baselines
    from safin.io import download, weights

    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "empty-cache"))
    calls = []
    for name in ("download", "pip_download_sdist"):
        monkeypatch.setattr(download, name, lambda *a, **k: calls.append(a))
        monkeypatch.setattr(weights, name, lambda *a, **k: calls.append(a))
    monkeypatch.setattr(weights, "fetch", lambda *a, **k: calls.append(a))
    for name in baselines.METHOD_NAMES:
        with pytest.raises(weights.AssetError, match="safin fetch-weights"):
            baselines.build(name)
    assert not calls
    assert not (tmp_path / "empty-cache").exists()
