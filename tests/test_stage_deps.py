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


def test_per_method_stages_track_every_setting_but_the_method_lists():
    """train@M and stylize@M list their params key by key, all but the method lists: adding a method to
    params.yaml runs its own stages and leaves every other method's alone; a new setting must be listed."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    train = set(stages["train"]["do"]["params"])
    assert train == ({f"train.{k}" for k in params["train"] if k != "methods"}
                     | {f"pretrained.{k}" for k in params["pretrained"]})  # which methods import a release
    stylize = set(stages["stylize"]["do"]["params"])
    assert {f"stylize.{k}" for k in params["stylize"] if k not in ("methods", "grids")} <= stylize
    assert not {"train", "stylize", "train.methods", "stylize.methods"} & (train | stylize)
    assert stages["train"]["foreach"] == "${train.methods}" and stages["stylize"]["foreach"] == "${stylize.methods}"
    for name, stage in stages.items():  # no stage names a method in its dependencies
        deps = " ".join((stage.get("do") or stage).get("deps", []))
        for method in ("safin/", "adain/", "wct/", "sanet/", "safin_fin/", "sanet_safin/"):
            assert f"outputs/train/{method}" not in deps and f"outputs/stylized/{method}" not in deps, (name, deps)
