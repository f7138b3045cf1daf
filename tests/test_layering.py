"""The dependency direction: pipeline -> evaluation, survey -> baselines -> safin."""
import ast

import pytest

from .conftest import REPO

FORBIDDEN = {
    "safin": {"baselines", "evaluation", "survey", "pipeline"},
    "baselines": {"evaluation", "survey", "pipeline"},
    "evaluation": {"pipeline", "survey"},
    "survey": {"pipeline", "torch", "torchvision", "safin", "baselines", "evaluation"},
}


def imported_packages(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package):
    bad = [(f.name, m) for f in sorted((REPO / package).glob("*.py")) for m in imported_packages(f)
           if m in FORBIDDEN[package]]
    assert not bad, f"{package} imports {bad}"
