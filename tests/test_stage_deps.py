"""dvc.yaml lists, per stage, exactly the code its modules import (pipeline/stage_deps.py)."""
import yaml

from pipeline.stage_deps import STAGE_MODULES, all_stages, code_deps

from .conftest import REPO

CODE_TOP = ("safin", "baselines", "evaluation", "survey", "pipeline")


def declared() -> dict[str, list[str]]:
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in doc.items():
        deps = (stage.get("do") or stage)["deps"]
        out[name] = sorted(d for d in deps if d.split("/")[0] in CODE_TOP)
    return out


def test_every_stage_lists_exactly_the_code_it_imports():
    want, have = all_stages(), declared()
    assert set(want) == set(have)
    bad = {s: {"missing": sorted(set(want[s]) - set(have[s])), "not imported": sorted(set(have[s]) - set(want[s]))}
           for s in want if want[s] != have[s]}
    assert not bad, f"update dvc.yaml (python -m pipeline.stage_deps prints the lists): {bad}"


def test_training_depends_on_no_downloader_survey_or_whole_folder():
    train = code_deps("train")
    for unrelated in ("safin/io/download.py", "safin/io/weights.py", "survey/tally.py", "pipeline/cli.py",
                      "safin", "baselines"):
        assert unrelated not in train
    assert "safin/models/modules.py" in train and "safin/training/trainer.py" in train


def test_stage_dependencies_cover_what_the_issue_found_missing():
    assert "safin/blocks/losses.py" in code_deps("evaluate") and "safin/io/weights.py" in code_deps("evaluate")
    assert "evaluation/templates" in code_deps("report")
    tally = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["survey_tally"]["deps"]
    assert "data/survey" in tally and (REPO / "data/survey/responses").is_dir() and (REPO / "data/survey/study").is_dir()
    assert set(STAGE_MODULES) | {"train"} == set(declared())
