"""Stages ``survey_study`` and ``survey_tally`` and the ``safin survey`` commands (no torch: runs on any laptop)."""
from __future__ import annotations

import json
from dataclasses import asdict
import sys
from pathlib import Path

from survey import figures

from .method_info import labels
from survey.design import StudyConfig, load_plan, make_plan, save_plan
from survey.responses import read_responses, write_responses
from survey.simulate import SimulationModel, population_shares, simulate
from survey.tally import TallyConfig, tally


def study_config(params: dict) -> StudyConfig:
    s = params["survey"]
    return StudyConfig(methods=list(s["methods"]), n_sets=int(s["n_sets"]), n_participants=int(s["n_participants"]),
                       n_attention_checks=int(s["attention_checks"]), n_repeats=int(s["repeats"]), seed=int(s["seed"]))


def study_dir(params: dict) -> Path:
    """The study folder (plan, images, served answers): the researcher's, outside every stage's outputs."""
    return Path(params["survey"].get("study", "data/survey/study"))


def study_plans(params: dict) -> dict | None:
    """The built study's plans by participant (None when no study has been built); a plan made for a
    different design than ``survey`` in params.yaml is an error naming the file."""
    path = study_dir(params) / "plan.json"
    if not path.exists():
        return None
    cfg, plans = load_plan(path)
    want = study_config(params)
    if asdict(cfg) != asdict(want):
        diff = sorted(k for k, v in asdict(cfg).items() if asdict(want)[k] != v)
        raise ValueError(f"{path}: built for a different study design than `survey` in params.yaml (differs in "
                         f"{', '.join(diff)}); restore those parameters or point survey.study at the right study")
    return {p.participant: p for p in plans}


def build_study_stage(params: dict, receipt: Path | None = None, out: Path | None = None) -> Path:
    """Stage ``survey_study``: the study from the stylized pairs, in ``survey.study`` (private, kept between
    runs, never a DVC output: an existing plan is kept). ``receipt``: a JSON file saying what was built
    (participants, sets, methods, image count; no token, no un-blinding key), the stage's output."""
    from survey.study import build_study

    cfg = study_config(params)
    folder = Path(out or study_dir(params))
    # a design changed before anyone answered (a method added to survey.methods) is rebuilt, the old plan set aside
    built = build_study(Path(params["stylize"]["out"]), folder, cfg, replace_unanswered=True,
                        responses=Path(params["survey"]["responses"]))
    if receipt is not None:
        images = sorted((folder / "images").rglob("*.png"))
        doc = {"study": str(folder), "plan": str(folder / "plan.json"), "methods": cfg.methods, "sets": cfg.n_sets,
               "participants": cfg.n_participants, "images": len(images),
               "note": "the plan (tokens, which id is which method) stays in the study folder: never publish it"}
        receipt.parent.mkdir(parents=True, exist_ok=True)
        receipt.write_text(json.dumps(doc, indent=2) + "\n")
    return built


def plan(params: dict, out: Path | None = None) -> Path:
    cfg = study_config(params)
    return save_plan(make_plan(cfg), cfg, Path(out or Path(params["survey"]["out"]) / "plan.json"))


def simulate_responses(params: dict, out: Path) -> Path:
    cfg = study_config(params)
    built = study_plans(params)
    plans = list(built.values()) if built else make_plan(cfg)
    model = SimulationModel(seed=int(params["survey"]["seed"]) + 1)
    path = write_responses(simulate(plans, cfg, model), out)
    truth = population_shares(model, cfg.methods)
    Path(out).with_suffix(".truth.json").write_text(json.dumps({"model": model.__dict__, "population_shares": truth},
                                                               indent=2, default=list))
    return path


def power(params: dict) -> dict | None:
    """The power analysis of ``survey.power`` (None when absent): this study's design (survey.n_participants x
    survey.n_sets) against a grid, for the effect it names, under the simulation model's noise."""
    from survey.power import PowerConfig, power_analysis

    s = params["survey"]
    p = s.get("power")
    if not p:
        return None
    cfg = PowerConfig(methods=list(s["methods"]), better=str(p["better"]), than=str(p["than"]), effect=float(p["effect"]),
                      participants=[int(x) for x in p["participants"]], sets=[int(x) for x in p["sets"]],
                      simulations=int(p["simulations"]), bootstrap=int(p["bootstrap"]), target=float(p["target"]),
                      seed=int(s["seed"]))
    if cfg.better not in cfg.methods or cfg.than not in cfg.methods:
        raise ValueError(f"survey.power compares {cfg.better} and {cfg.than}: both must be in survey.methods {cfg.methods}")
    return power_analysis(cfg, design=(int(s["n_participants"]), int(s["n_sets"])))


def platform_ids(rows: list[dict], params: dict, plans: dict | None) -> dict:
    """``{participant: {"platform", "id"}}`` of the participants who came from a recruitment platform (to approve
    and pay them); ids salted and hashed when ``survey.recruitment.hash_ids`` (the salt is the plan's invite
    tokens: private to the researcher, stable for the study)."""
    from survey.recruitment import RecruitmentConfig, hashed_id

    cfg = RecruitmentConfig.from_params(params["survey"].get("recruitment"))
    salt = "".join(sorted(p.token for p in (plans or {}).values()))
    out = {}
    for r in rows:
        if r.get("platform") and r.get("platform_id") and r["participant"] not in out:
            pid = hashed_id(r["platform"], r["platform_id"], salt) if cfg.hash_ids else r["platform_id"]
            out[r["participant"]] = {"platform": r["platform"], "id": pid, "hashed": cfg.hash_ids}
    return out


def tally_config(params: dict) -> TallyConfig:
    s, cfg = params["survey"], study_config(params)
    ex = s.get("exclusion") or {}
    fast = ex.get("min_median_screen_seconds", 2.0)
    return TallyConfig(cfg.methods, list(cfg.questions), n_sets=cfg.n_sets, n_bootstrap=int(s["bootstrap"]),
                       seed=int(s["seed"]), min_regular_fraction=float(ex.get("min_regular_fraction", 0.9)),
                       min_median_screen_seconds=None if fast is None else float(fast),
                       model_bootstrap=int(s.get("model_bootstrap", 300)))


def registration_parts(params: dict) -> dict:
    """What a preregistration fixes, computed from params.yaml and the built study (survey.preregistration)."""
    from survey.design import image_hashes
    from survey.preregistration import digest, plan_digest
    from survey.tally import exclusion_rules

    cfg, tc = study_config(params), tally_config(params)
    plans = study_plans(params)
    images = image_hashes(study_dir(params) / "plan.json") if plans else {}
    return {
        "design": asdict(cfg),
        "plan_sha256": plan_digest(plans.values()) if plans else None,
        "images_sha256": digest(images) if images else None,
        "exclusion_rules": exclusion_rules(tc),
        "planned_tests": {
            "unit": "regular screens; attention checks and repeats left out (repeats: consistency only)",
            "vote_shares": f"per question, 95% two-way cluster bootstrap over participants and sets ({tc.n_bootstrap} "
                           f"resamples, seed {tc.seed}); naive Wilson intervals for reference",
            "tests": ["chi-square against chance (naive)", "Friedman on per-participant counts",
                      "pairwise Wilcoxon signed-rank, Holm-corrected at 0.05"],
            "models": ["Luce (top-1 Plackett-Luce) scale, two-way cluster bootstrap",
                       "mixed-effects logistic model: participant x method and set x method random intercepts"],
            "decision": "SAFIN preferred (reproduced) when its share is the largest and its interval's lower bound "
                        "exceeds every other method's upper bound; not reproduced when another method's lower bound "
                        "exceeds SAFIN's upper bound; otherwise inconclusive",
        },
        "power_settings": params["survey"].get("power"),
    }


def preregister(params: dict, out: Path | None = None) -> tuple[Path, str]:
    """``safin survey preregister``: the registration file (design, power analysis, exclusion rules, planned
    tests) and its sha256, written before any answer exists."""
    from survey.preregistration import write
    from survey.study import answers_recorded

    s = params["survey"]
    path = Path(out or s.get("preregistration") or "data/survey/preregistration.json")
    if study_plans(params) is None:
        raise ValueError(f"{path}: not written: build the study first (safin survey build-study): the registration "
                         f"records its screens and images ({study_dir(params)}/plan.json is missing)")
    answered, where = answers_recorded(study_dir(params), Path(s["responses"]))
    if answered:
        raise ValueError(f"{path}: not written: the study already has {answered} answers ({where}); a "
                         "preregistration is written before any data exists")
    doc = registration_parts(params)
    doc["power"] = power(params)
    return path, write(doc, path)


def tally_stage(params: dict) -> dict:
    """Tally every CSV in ``survey.responses``; with none there, tally a simulated study (labelled)."""
    s = params["survey"]
    out = Path(s["out"])
    files = sorted(Path(s["responses"]).glob("*.csv")) if Path(s["responses"]).exists() else []
    if not files:
        print(f"{s['responses']}: no responses yet; tallying a SIMULATED study so the stage runs end to end")
        files = [simulate_responses(params, out / "simulated_responses.csv")]
    cfg = study_config(params)
    plans = study_plans(params)  # decodes static participants' opaque identifiers
    participants = set(plans) if plans else {f"p{i + 1:02d}" for i in range(cfg.n_participants)}
    resp = read_responses(files, set(cfg.questions), participants, plans)
    for problem in resp.problems:
        print(f"survey tally: {problem}", file=sys.stderr)
    if resp.problems:
        print(f"survey tally: {len(resp.problems)} problem(s) in the responses; the tally lists them under "
              f"invalid_rows", file=sys.stderr)
    images = None
    if plans:  # every answer counted was given on the images the study recorded when it was built
        from survey.design import image_hashes
        from survey.study import check_images

        images = check_images(study_dir(params), resp.rows, image_hashes(study_dir(params) / "plan.json"))
        if not images["checked"]:
            print(f"survey tally: {study_dir(params)}: images not checked: {images['why']}", file=sys.stderr)
    doc = tally(resp, tally_config(params))
    doc["images"] = images
    registered = Path(s.get("preregistration") or "data/survey/preregistration.json")
    if registered.exists():  # the study analysed against what was registered before any data existed
        from survey.preregistration import check

        doc["preregistration"] = check(registered, registration_parts(params))
    else:
        doc["preregistration"] = None
    doc["platform_ids"] = platform_ids(resp.rows, params, plans)
    doc["files"] = [str(f) for f in files]
    doc["labels"] = labels(cfg.methods)  # the methods' own labels (outputs/methods, stage check_methods)
    doc["power"] = power(params)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tally.json").write_text(json.dumps(doc, indent=1) + "\n")
    metrics = Path(s.get("metrics", "metrics/survey.json"))  # the headline numbers, for `dvc metrics show`
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({
        "simulated": doc["simulated"], "participants_kept": doc["participants"]["kept"],
        "shares": {q: {m: {"share": round(v["share"], 4), "ci95": [round(x, 4) for x in v["ci95"]]}
                       for m, v in shares.items() if not m.startswith("_")} for q, shares in doc["shares"].items()},
        "luce_theta": {q: {m: {"value": round(t["value"], 4), "ci95": [round(x, 4) for x in t["ci95"]]}
                           for m, t in scale["theta"].items()} for q, scale in doc["luce_scale"].items() if scale},
        "power_of_this_design": (doc["power"] or {}).get("design"),
    }, indent=2) + "\n")
    figures.grouped_bars(doc, out / "fig7_grouped.png")
    figures.stacked_bars(doc, out / "fig7_stacked.png")
    for q in doc["shares"]:
        figures.heat_map(doc, q, out / f"per_set_{q}.png")
    return doc
