"""Which source code a computation depends on, read from the imports.

:func:`import_closure` walks the project's own imports (``ast``, so imports inside functions count
too) from a set of modules. Two users:

- the trainer's checkpoint fingerprint (:func:`training_code_digest`): the code that can change the
  arithmetic of one method's training — its model, losses, data stream, trainer — and nothing else,
  so editing a docstring, the downloader or the survey never restarts a run;
- the DVC stages' code dependencies (``pipeline/stage_deps.py`` and its test): each stage lists what
  its module imports.

The digest hashes each module's syntax tree without docstrings: comments, docstrings, formatting, a
class's display ``label`` and its ``load_reference`` (the authors' checkpoints, never trained) do not
count, code does.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

#: the repository root (the folder holding the ``safin`` package)
ROOT = Path(__file__).resolve().parents[2]
#: the project's own top-level packages; imports of anything else are not followed
PACKAGES = ("safin", "baselines", "evaluation", "survey", "pipeline")

#: modules a method's training imports that cannot change its arithmetic, each with the reason; the
#: fingerprint neither hashes them nor follows their imports
NOT_ARITHMETIC = {
    "safin.io.download": "fetches bytes whose checksums the weight registry pins",
    "safin.io.weights": "the encoder weights enter the fingerprint as their pinned tensor sha256",
    "safin.io.files": "atomic writes and checksums of files",
    "safin.io.safe_pickle": "a restricted unpickler for weight conversion",
    "safin.io.torch7": "reads the authors' Torch7 files (load_reference), never used in training",
    "safin.io.datasets": "prepares the image folders (stage fetch_data); the trainer reads the folders",
    "safin.runtime.cpu_memory": "the C library's allocator settings",
    "safin.training.checkpoints": "where checkpoints are written and which one is resumed",
    "safin.training.config": "the recipe's values enter the fingerprint themselves",
    "safin.training.code": "this module",
}

#: where a training run's code starts, besides the method's own module
TRAINER_MODULES = ("safin.training.trainer", "safin.training.data")


#: packages outside the project whose code is followed too (a plugin method's own package), top-level
#: name -> the folder that holds it; see :func:`follow_package`
EXTRA_ROOTS: dict[str, Path] = {}


def follow_package(top: str) -> None:
    """Follow the imports inside top-level package ``top`` as if it were the project's (a plugin's
    method lives there: its code changes its training like ours does)."""
    import importlib.util

    spec = importlib.util.find_spec(top)
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return
    origin = Path(spec.origin).resolve()
    EXTRA_ROOTS[top] = origin.parent.parent if origin.name == "__init__.py" else origin.parent


def module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    top = name.split(".")[0]
    if top in PACKAGES:
        base = ROOT.joinpath(*name.split("."))
    elif top in EXTRA_ROOTS:
        base = EXTRA_ROOTS[top].joinpath(*name.split("."))
    else:
        return None
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def module_name(path: Path) -> str:
    path = path.resolve()
    for root in (ROOT, *EXTRA_ROOTS.values()):
        if path.is_relative_to(root):
            return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    raise ValueError(f"{path}: not a module of the project or of a followed package")


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def direct_imports(name: str) -> set[str]:
    """Project modules that module ``name`` imports anywhere in its body (relative imports resolved;
    ``from pkg import x`` counts ``pkg.x`` when that is a module, else ``pkg``)."""
    path = module_file(name)
    if path is None:
        return set()
    tree = ast.parse(path.read_text())
    pkg = _package_of(name, path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if module_file(sub) else base)
    return {m for m in found if module_file(m) is not None and m != name}


def import_closure(roots: Iterable[str], *, stop: Iterable[str] = (), parents: bool = False) -> list[str]:
    """Every project module reachable from ``roots`` by imports, sorted; modules in ``stop`` are
    neither included nor followed. ``parents``: also each module's enclosing packages (their
    ``__init__`` runs when the module is imported) and what those import."""
    stop = set(stop)
    seen: set[str] = set()
    todo = [r for r in roots if r not in stop]
    while todo:
        m = todo.pop()
        if m in seen or m in stop or module_file(m) is None:
            continue
        seen.add(m)
        todo += sorted(direct_imports(m))
        if parents:
            parts = m.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]
    return sorted(seen)


#: class attributes that only say how a method is shown (``StyleTransfer.label``) or how its test images are
#: resized (``test_resize``, inference only): not training arithmetic
PRESENTATION = {"label", "test_resize"}
#: methods of a class that never run in training: loading the authors' released checkpoints
NOT_TRAINING = {"load_reference"}


def _is_presentation(stmt: ast.stmt) -> bool:
    """``label = "..."`` (or ``label: ClassVar[str] = "..."``) in a class body."""
    target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else getattr(stmt, "target", None)
    value = getattr(stmt, "value", None)
    return (isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(target, ast.Name)
            and target.id in PRESENTATION and isinstance(value, ast.Constant) and isinstance(value.value, str))


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """The tree without docstrings, and without the presentation attributes of classes and their
    methods that never run in training (:data:`NOT_TRAINING`)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            if isinstance(node, ast.ClassDef):
                body = [b for b in body if not _is_presentation(b)
                        and not (isinstance(b, ast.FunctionDef) and b.name in NOT_TRAINING)]
            node.body = body or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=256)
def _module_digest(path: Path, mtime_ns: int) -> str:
    tree = _strip_docstrings(ast.parse(path.read_text()))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def module_digest(name: str) -> str:
    """sha256 of module ``name``'s syntax tree without docstrings (comments never reach the tree)."""
    path = module_file(name)
    assert path is not None, name
    return _module_digest(path, path.stat().st_mtime_ns)


def training_modules(method_module: str) -> list[str]:
    """The modules whose code can change the arithmetic of training the method in ``method_module``
    (a plugin's package included)."""
    if method_module.split(".")[0] not in PACKAGES:
        follow_package(method_module.split(".")[0])
    return import_closure([method_module, *TRAINER_MODULES], stop=NOT_ARITHMETIC)


def training_code_digest(method_module: str) -> dict[str, str]:
    """``{module: digest}`` of :func:`training_modules` — what a checkpoint records, so a mismatch can
    name the modules that changed."""
    return {m: module_digest(m) for m in training_modules(method_module)}
