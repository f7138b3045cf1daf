"""Each DVC stage's code dependencies, derived from what its module imports.

``dvc.yaml`` lists them explicitly (DVC cannot compute them); ``tests/test_stage_deps.py`` checks that
the lists equal what this module derives, so a new import shows up as a failing test with the list to
paste, and an edit to a file a stage does not import never makes it stale. ``python -m pipeline.stage_deps``
prints the lists.

- ``train@METHOD``: ``pipeline/train.py``, the import of an authors' release (``pipeline/pretrained.py``, its check
  ``pipeline/verify_release.py``,
  ``safin/io/releases.py``: the profile pretrained's train@METHOD) and the code that can change any method's training
  arithmetic (:func:`safin.training.code.training_modules`), not the downloader, the survey or the
  CLI. The trainer's checkpoint fingerprint narrows it further, per method: a stage made stale by
  another method's code resumes its final checkpoint instead of training again.
- every other stage: the import closure of its modules, with the packages' ``__init__`` files and the
  Jinja2 templates a module loads and the data folders beside it it reads (``Path(__file__).resolve().parent / "NAME"``). ``pipeline/cli.py`` only parses arguments and is no stage's dependency.
"""
from __future__ import annotations

import re

from safin.training.code import ROOT, import_closure, module_file, training_modules

#: the modules that do each stage's work (``safin <command>`` -> these)
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "fetch_weights": ("pipeline.fetch",),
    "fetch_data": ("pipeline.fetch",),
    "check_methods": ("pipeline.methods",),
    "curves": ("evaluation.curves",),
    "pairs": ("pipeline.stylize",),
    "stylize": ("pipeline.stylize",),
    "grids": ("evaluation.grids", "pipeline.method_info"),
    "evaluate": ("pipeline.evaluate",),
    "survey_study": ("pipeline.survey", "survey.study"),
    "survey_tally": ("pipeline.survey",),
    "benchmark": ("evaluation.speed", "evaluation.speed_worker"),
    "report": ("pipeline.report",),
}


def _files(modules) -> list[str]:
    out = set()
    for m in modules:
        f = module_file(m)
        out.add(f.relative_to(ROOT).as_posix())
        for pkg in re.findall(r"PackageLoader\(\s*\"(\w+)\",\s*\"(\w+)\"\s*\)", f.read_text()):
            out.add("/".join(pkg))
        for folder in re.findall(r"Path\(__file__\)\.resolve\(\)\.parent / \"(\w+)\"", f.read_text()):
            out.add((f.parent / folder).relative_to(ROOT).as_posix())  # a data folder the module reads
    return sorted(out)


def train_deps() -> list[str]:
    import baselines

    mods = {"pipeline.train", "pipeline.pretrained", "pipeline.verify_release", "pipeline.method_info",
            "safin.io.releases"}  # + imports of releases
    for name in baselines.METHOD_NAMES:
        mods |= set(training_modules(baselines.METHODS[name].__module__))
    return _files(mods)


def code_deps(stage: str) -> list[str]:
    """The repository-relative source files (and template folders) stage ``stage`` depends on."""
    if stage == "train":
        return train_deps()
    return _files(import_closure(STAGE_MODULES[stage], parents=True))


def all_stages() -> dict[str, list[str]]:
    return {s: code_deps(s) for s in ("train", *STAGE_MODULES)}


if __name__ == "__main__":
    for stage, deps in all_stages().items():
        print(f"{stage}:\n" + "".join(f"  - {d}\n" for d in deps))
