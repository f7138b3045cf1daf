"""The study is blind: opaque per-participant identifiers, images that carry nothing but pixels, static
response files decoded with the plan, and nothing lost for the researcher."""
import csv
import json
import struct
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from survey.blinding import BLIND_COLUMNS, new_ids
from survey.design import BROKEN, StudyConfig, forbidden_words, load_plan, make_plan, save_plan
from survey.responses import read_responses, write_responses
from survey.simulate import SimulationModel, simulate
from survey.static import export_static
from survey.study import build_study
from survey.tally import TallyConfig, tally

from .test_survey_server import fake_stylized


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order (read by hand: this is what the test checks)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append(kind)
        pos += 12 + length
    return out


def names(cfg) -> list[str]:
    return [w.lower() for w in forbidden_words(cfg)]


def option_ids(plan) -> set[str]:
    return set(plan.image_ids())


@pytest.fixture
def study(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=3, n_attention_checks=1, n_repeats=1)
    stylized = fake_stylized(tmp_path / "stylized", 3, cfg.methods)
    # what a method's own writer might leave in its files: text chunks, EXIF, an ICC profile, another size
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Software", "safin stylize --method safin")
    exif = Image.Exif()
    exif[0x0131] = "adain"
    im = Image.open(stylized / "safin" / "00.png").convert("RGB")
    im.save(stylized / "safin" / "00.png", pnginfo=meta, exif=exif, icc_profile=b"\0" * 128)
    im.resize((60, 44)).save(stylized / "wct" / "01.png")
    return build_study(stylized, tmp_path / "study", cfg), cfg


def test_identifiers_are_unique_across_participants_and_never_contain_a_name():
    cfg = StudyConfig(n_participants=25)
    plans = make_plan(cfg)
    seen = [option_ids(p) for p in plans]
    assert all(len(s) == 4 * 44 + 2 * 40 + 2 + 4 for s in seen)  # every option of every screen, content and style
    # per set, and the practice screen's six images
    assert len(set().union(*seen)) == sum(map(len, seen))  # no identifier shared between two participants
    for p in plans:
        blob = json.dumps([it.options for it in p.items]) + p.token.lower()
        assert not any(w in blob for w in names(cfg))
        repeat = next(it for it in p.items if it.kind == "repeat")
        first = next(it for it in p.items if it.kind == "regular" and it.set_id == repeat.set_id)
        assert not set(repeat.options) & set(first.options)  # a repeated screen cannot be matched by its ids
    taken = set()
    assert not any("a" in i or "0" in i for i in new_ids(200, taken, ["a", "0"])) and len(taken) == 200


def test_images_are_reencoded_without_metadata_and_options_of_a_set_are_alike(study):
    path, cfg = study
    for d in sorted((path / "images").iterdir()):
        files = {f.stem: f for f in d.glob("*.png")}
        choices = [f"option{j}" for j in range(len(cfg.methods))] if d.name == "practice" else [*cfg.methods, BROKEN]
        assert set(files) == {"content", "style", *choices}
        for f in files.values():
            assert png_chunks(f.read_bytes()) == [b"IHDR", b"IDAT", b"IEND"], f
        options = [files[m] for m in choices]
        assert len({Image.open(f).size for f in options}) == 1, d           # wct/01 was resized
        assert len({f.stat().st_size for f in options}) == 1, d             # uncompressed: the size tells nothing
    assert np.array_equal(np.asarray(Image.open(path / "images/00/safin.png")),
                          np.asarray(Image.open(path.parent / "stylized/safin/00.png").convert("RGB")))


def test_the_static_export_names_no_method_and_shares_no_identifier(study, tmp_path):
    path, cfg = study
    _, plans = load_plan(path / "plan.json")
    pages = export_static(path, tmp_path / "static")
    everything = sorted(p for p in (tmp_path / "static").rglob("*"))
    assert not any(p.name == "plan.json" for p in everything)
    for f in everything:
        rel = str(f.relative_to(tmp_path / "static")).lower()
        assert not any(w in rel for w in names(cfg)), rel
        if f.suffix == ".png":
            assert png_chunks(f.read_bytes()) == [b"IHDR", b"IDAT", b"IEND"]
        elif f.is_file():
            text = f.read_text().lower()
            assert not any(w in text for w in names(cfg)), (f, [w for w in names(cfg) if w in text])
            assert "attention" not in text and '"kind"' not in text and "set_id" not in text
    for page, plan in zip(pages, plans):
        text = page.read_text()
        assert all(i in text for it in plan.items for i in it.options)
        others = set().union(*(option_ids(p) for p in plans if p is not plan))
        assert not any(i in text for i in others)
        folder = {f.stem for f in (tmp_path / "static" / plan.participant).iterdir()}
        assert folder == option_ids(plan)


def blind_file(path, plan, choose):
    """The file a static participant downloads, answering ``choose(screen) -> position``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(BLIND_COLUMNS)
        for i, it in enumerate(plan.items):
            for q in ("best_stylization", "fewest_artifacts"):
                w.writerow([plan.participant, i, q, it.options[choose(i, q)], "t0", "t1"])
    return path


def test_a_static_file_is_decoded_with_the_plan_and_a_mismatch_is_reported_not_guessed(tmp_path):
    cfg = StudyConfig(n_sets=3, n_participants=2, n_attention_checks=1, n_repeats=0)
    plans = make_plan(cfg)
    by_id = {p.participant: p for p in plans}
    good = blind_file(tmp_path / "responses_p01.csv", plans[0], lambda i, q: (i + len(q)) % 4)
    resp = read_responses([good], set(cfg.questions), set(by_id), by_id)
    assert resp.problems == [] and len(resp.rows) == len(plans[0].items) * 2
    for r in resp.rows:
        it = next(it for it in plans[0].items if it.set_id == r["set"] and it.kind == r["kind"])
        assert r["order"] == it.order and r["chosen"] in it.order
    check = next(r for r in resp.rows if r["kind"] == "attention")
    assert isinstance(check["chosen"], str)
    # p02's file claiming to be p01's (ids of another plan), and a screen that p01 does not have
    lines = blind_file(tmp_path / "x.csv", plans[1], lambda i, q: 0).read_text().splitlines()
    lines[1] = lines[1].replace("p02", "p01", 1)
    lines[2] = "p01,77," + lines[2].split(",", 2)[2]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    resp = read_responses([tmp_path / "x.csv"], set(cfg.questions), set(by_id), by_id)
    assert sum("was not shown to p01 on screen 0" in p and "not guessed" in p for p in resp.problems) == 1
    assert sum("p01 has no screen 77" in p for p in resp.problems) == 1
    assert len(resp.rows) == len(plans[1].items) * 2 - 2
    # without the plan the file is skipped with one line, never guessed
    resp = read_responses([good], set(cfg.questions))
    assert resp.rows == [] and len(resp.problems) == 1 and "plan.json is needed" in resp.problems[0]


def test_mixed_served_and_static_responses_tally_as_before(tmp_path):
    """Half the participants answered on the server (its export names methods, as before blinding),
    half through static pages (identifiers only): the tally equals the tally of every answer in the
    pre-blinding schema."""
    cfg = StudyConfig(n_sets=6, n_participants=8, n_attention_checks=1, n_repeats=1)
    plans = make_plan(cfg)
    rows = simulate(plans, cfg, SimulationModel(seed=5, careless=0.2))
    for r in rows:
        r["simulated"] = False
    reference = read_responses([write_responses(rows, tmp_path / "all.csv")], set(cfg.questions))
    served = [r for r in rows if r["participant"] <= "p04"]
    files = [write_responses(served, tmp_path / "served.csv")]
    for plan in plans[4:]:
        mine = [r for r in rows if r["participant"] == plan.participant]
        answers = {}
        for i, it in enumerate(plan.items):  # the i-th screen's answers, in the order simulate wrote them
            for q in cfg.questions:
                answers[(i, q)] = it.order.index(mine[2 * i + list(cfg.questions).index(q)]["chosen"])
        files.append(blind_file(tmp_path / f"responses_{plan.participant}.csv", plan, lambda i, q: answers[(i, q)]))
    by_id = {p.participant: p for p in plans}
    mixed = read_responses(files, set(cfg.questions), set(by_id), by_id)
    assert mixed.problems == [] and len(mixed.rows) == len(reference.rows)
    tcfg = TallyConfig(cfg.methods, list(cfg.questions), n_sets=cfg.n_sets, n_bootstrap=300)
    a, b = tally(reference, tcfg), tally(mixed, tcfg)
    ma, mb = a.pop("mixed_model"), b.pop("mixed_model")  # variational Bayes: equal to its optimiser's tolerance
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    for q in ma:
        for m, fe in ma[q]["fixed_log_odds"].items():
            assert abs(fe["value"] - mb[q]["fixed_log_odds"][m]["value"]) <= 2e-4
    assert a["participants"]["excluded"] == b["participants"]["excluded"]


def test_rebuilding_keeps_the_plan_and_a_plan_before_blinding_is_upgraded_in_place(study, tmp_path, capsys):
    path, cfg = study
    before = (path / "plan.json").read_text()
    build_study(path.parent / "stylized", path, cfg)
    assert (path / "plan.json").read_text() == before and "kept" in capsys.readouterr().out
    with pytest.raises(ValueError, match="plan for a different design"):
        build_study(path.parent / "stylized", path, StudyConfig(n_sets=3, n_participants=5))
    # a plan written by the previous version: no identifiers
    doc = json.loads(before)
    for p in doc["participants"]:
        p.pop("refs")
        for it in p["items"]:
            it.pop("options")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    _, plans = load_plan(old)
    assert [p.token for p in plans] == [p["token"] for p in doc["participants"]]
    assert all(len(it.options) == len(it.order) for p in plans for it in p.items)
    assert load_plan(old)[1][0].items[0].options == plans[0].items[0].options  # saved back, stable from now on
    with pytest.raises(ValueError, match="not a study plan"):
        (tmp_path / "junk.json").write_text("{}")
        load_plan(tmp_path / "junk.json")


def test_the_served_page_and_state_name_nothing(study):
    from starlette.testclient import TestClient

    from survey.server import create_app

    path, cfg = study
    app = create_app(path, admin_token="adm")
    c = TestClient(app)
    for plan in app.state.plans:
        for url in (f"/s/{plan.token}", f"/api/{plan.token}/state"):
            r = c.get(url)
            text = (r.text + json.dumps(dict(r.headers))).lower()
            assert r.status_code == 200 and not any(w in text for w in names(cfg)), url
            assert "\"attention\"" not in text and "\"repeat\"" not in text and "\"regular\"" not in text
        state = c.get(f"/api/{plan.token}/state").json()
        assert [it["options"] for it in state["items"]] == [it.options for it in plan.items]


def test_the_tally_stage_decodes_static_files_with_the_built_study(study, tmp_path):
    from pipeline.params import load_params
    from pipeline.survey import tally_stage

    path, cfg = study
    params = load_params("params.yaml")
    params["survey"].update({"methods": cfg.methods, "n_sets": 3, "n_participants": 3, "attention_checks": 1,
                             "repeats": 1, "bootstrap": 50, "study": str(path), "responses": str(tmp_path / "resp"),
                             "out": str(tmp_path / "out"), "metrics": str(tmp_path / "survey.json")})
    # the power analysis runs in the stage too (its subject is tests/test_survey_models.py): one small grid point
    params["survey"]["power"].update({"participants": [10], "sets": [20], "simulations": 20, "bootstrap": 50})
    (tmp_path / "resp").mkdir()
    _, plans = load_plan(path / "plan.json")
    for p in plans:
        blind_file(tmp_path / "resp" / f"responses_{p.participant}.csv", p, lambda i, q: 0)
    doc = tally_stage(params)
    assert doc["simulated"] is False and doc["participants"]["kept"] + sum(
        len(v) for v in doc["participants"]["excluded"].values()) == 3
    # every image answered on: each set's content, style and outputs, and the attention checks' broken images
    assert doc["images"]["checked"] and 3 * (2 + len(cfg.methods)) < doc["images"]["images"] <= 3 * (3 + len(cfg.methods))
    shown = path / "images/01" / f"{cfg.methods[0]}.png"  # an image replaced under the answers: refused
    original = shown.read_bytes()
    shown.write_bytes(original[:-1] + b"\1")
    with pytest.raises(ValueError, match="01/.*changed since the study was built"):
        tally_stage(params)
    shown.write_bytes(original)
    params["survey"]["n_participants"] = 4
    with pytest.raises(ValueError, match="different study design"):
        tally_stage(params)
    assert asdict(cfg)  # the fixture's design is what the study was built with
