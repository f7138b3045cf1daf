"""The report: setup, metrics with CIs, claims with verdicts, grids and curves — Markdown and a
self-contained HTML file (images embedded) that opens offline."""
from __future__ import annotations

import base64
import datetime as dt
import json
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from safin.io.files import sha256_file

from .claims import OURS, RIVALS, VERDICTS, Verdict
from .metrics import DESCRIPTION, DIRECTION

SCALE_NOTE = {
    "ci": "ci profile: every model trained for a handful of iterations at 64 px — the numbers test the "
          "machinery, not the methods. No claim can be decided at this scale.",
    "demo": "demo profile: every model trained for a few hundred CPU iterations on 55 sample images "
            "(the paper: 160k iterations on MS-COCO + WikiArt). Verdicts describe these barely-trained "
            "models; they cannot confirm or refute what the paper says about converged ones.",
    "paper": "paper profile: the paper's recipe and data; verdicts speak to the paper's claims.",
    "pretrained": "pretrained profile: the authors' released models (see Training: weights), on the 40 "
                  "evaluation pairs; the claims about them are claims about the models the paper compared. "
                  "Methods without a release are trained with train.* or left out, as the table says.",
    "styleid": "styleid profile: the authors' released models on StyleID's 800 pairs, measured with StyleID's evaluation "
               "code; the published numbers of StyleID's Table 1 stand beside ours below.",
}

TRAIN_HEADER = ["method", "weights", "iterations", "images/s", "device", "encoder", "final total loss"]


#: what each figure of the report shows (by file stem; a grid page by prefix)
CAPTIONS = {
    "fig2_semantic_awareness": "Paper Fig. 2 — semantic awareness: SAFIN against the baselines on pairs whose content "
                               "has distinct regions (content, style, then one column per method)",
    "fig5a_sanet_vs_safin_in_sanet": "Paper Fig. 5a — SANet's module against SAFIN's in SANet's base network",
    "fig6_fin_vs_safin": "Paper Fig. 6 — FIN (self-attention removed) against SAFIN",
    "fig7_grouped": "Paper Fig. 7 — the user study's vote shares per question with two-way cluster-bootstrap 95% "
                    "CIs (chance: dashed line)",
    "fig7_stacked": "Paper Fig. 7, stacked: each question's votes split by method",
    "loss_curves": "Paper Fig. 5b — training content and style losses of SANet and SAFIN in SANet (raw and smoothed)",
}


def study_note(sdoc: dict) -> str:
    """The report's user-study paragraph from the tally (``outputs/survey/tally.json``)."""
    p = sdoc["participants"]
    note = (("SIMULATED responses (no real study yet): the figures below show the tally machinery, "
                   "not people's judgements. " if sdoc.get("simulated") else "")
                  + f"{p['kept']} of {p['total']} participants kept; excluded: "
                  + "; ".join(f"{k}: {len(v)}" for k, v in p["excluded"].items()) + ".")
    intro = p.get("intro_seconds") or {}
    if intro:
        note += (" Time before the study (median [quartiles], of the participants kept): "
                 + "; ".join(f"{screen} {v['median']:.0f} s [{v['quartiles'][0]:.0f}, {v['quartiles'][1]:.0f}] "
                             f"({v['participants']} participants)" for screen, v in intro.items()) + ".")
    rules = sdoc.get("exclusion_rules") or {}
    if rules:
        note += " Exclusion rules, in order: " + "; ".join(f"{k} ({rules[k]})" for k in rules.get("order", [])
                                                            if k in rules) + "."
    reg = sdoc.get("preregistration")
    if reg:
        when = f"registered {reg.get('registered_at')}, sha256 {reg['sha256'][:16]}…"
        if reg["matches"]:
            note += f" The study matches its preregistration ({reg['file']}, {when})."
        else:
            note += (f" The study does NOT match its preregistration ({reg['file']}, {when}): "
                     + "; ".join((["the file was edited after it was registered (its sha256 differs from "
                                   f"{reg['file']}.sha256)"] if not reg["unchanged"] else [])
                                 + [f"differs in {d}" for d in reg["differences"]]) + ".")
    elif reg is None and "preregistration" in sdoc:
        note += " Not preregistered (`safin survey preregister` before collecting answers)."
    images = sdoc.get("images")
    if images and images.get("checked"):
        note += (f" Every answer counted was given on the images the study recorded when it was built "
                       f"({images['images']} images, sha256 checked by the tally).")
    elif images:
        note += f" The study's images were not checked against the plan: {images['why']}."
    for q, scale in (sdoc.get("luce_scale") or {}).items():
        if scale:
            note += (f" Luce preference scale, {q} (θ, centred; 95% two-way cluster-bootstrap CI): "
                           + ", ".join(f"{m} {t['value']:+.2f} [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}]"
                                       for m, t in scale["theta"].items()) + ".")
    for q, fit in (sdoc.get("mixed_model") or {}).items():
        if fit:
            re = fit["random_effect_sd"]
            note += (f" Mixed-effects logistic model, {q} (log-odds of being chosen; 95% credible interval): "
                           + ", ".join(f"{m} {t['value']:+.2f} [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}]"
                                       for m, t in fit["fixed_log_odds"].items())
                           + f"; random-effect SD participant × method {re['participant x method']:.2f}, "
                             f"set × method {re['set x method']:.2f}.")
    pw = sdoc.get("power")
    if pw and pw.get("design"):
        d = pw["design"]
        need = ", ".join(f"{s} sets: {n if n else '> ' + str(max(g['participants'] for g in pw['grid']))}"
                         for s, n in pw["participants_needed_for_target"].items())
        note += (f" Power analysis (simulated, {pw['simulations']} studies per design): detecting "
                       f"{pw['better']} preferred over {pw['than']} by {pw['effect_log_odds']} log-odds has power "
                       f"{d['power']:.2f} (± {d['mc_se']:.2f}) with this design ({d['participants']} participants × "
                       f"{d['sets']} sets); participants needed for power {pw['target']}: {need}.")
    return note


def caption(fig: Path) -> str:
    stem = Path(fig).stem
    if stem in CAPTIONS:
        return CAPTIONS[stem]
    if stem.startswith("pairs_"):
        return f"Evaluation pairs, page {stem.split('_')[-1]}: content, style, then every method of stylize.methods"
    return stem


def training_row(method: str, t: dict) -> list:
    """One row of the Training table from ``summary.json``: trained here, or the authors' release."""
    enc = t.get("encoder") or {}
    encoder = enc.get("source") or enc.get("name") or "not recorded (a run before the encoder was recorded)"
    if t.get("origin") == "authors' release":
        return [method, f"the authors' release: {t.get('release')}", "—", "—", "—", encoder, "—"]
    ips = t.get("images_per_s")
    return [method, "trained here", t["iterations"], f"{ips:.2f}" if ips else "—", t.get("device", "?"), encoder,
            _fmt(t.get("final_losses", {}).get("total", float("nan")))]


#: the report's HTML template (package data under ``evaluation/templates``), HTML-escaped by default
TEMPLATES = Environment(loader=PackageLoader("evaluation", "templates"), autoescape=select_autoescape(["html"]))


def _sha256(path: Path) -> str:
    return sha256_file(path) if Path(path).exists() else "missing"


def environment() -> dict:
    import torch
    import torchvision

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    from safin.runtime.cpu_isa import describe

    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else f"CPU ({describe()}; {torch.get_num_threads()} threads)")
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "git commit": commit,
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "platform": platform.platform(), "device": device}


def _embedded(path: Path, max_width: int = 1600) -> str:
    """A figure as a data URI (JPEG, at most ``max_width`` px wide) so the HTML opens offline and stays small."""
    import io

    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def metrics_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The per-pair metrics of the run's protocol (the columns its summary holds); CFSD's header says when its
    network makes it not comparable with published CFSD."""
    first = next(iter(summary["metrics"].values()), {})
    metrics = [m for m in DIRECTION if m in first]
    comparable = (summary.get("cfsd_network") or {}).get("comparable", False)

    def head(m):
        label = f"{m} {'↓' if DIRECTION[m] < 0 else '↑'}"
        return label + (" (not comparable with published CFSD)" if m == "cfsd" and not comparable else "")
    header = ["method"] + [head(m) for m in metrics]
    rows = []
    degenerate = summary.get("degenerate") or {}
    for method, vals in summary["metrics"].items():
        rows.append([method + (" — DEGENERATE, not judged" if method in degenerate else "")] + [f"{_fmt(vals[m]['mean'])} [{_fmt(vals[m]['ci95'][0])}, {_fmt(vals[m]['ci95'][1])}]"
                                for m in metrics])
    return header, rows


SEED_METRICS = ("content_loss", "style_loss", "lpips", "ssim", "cfsd")


def protocol_note(summary: dict) -> str:
    """Which reference the numbers equal (``evaluate.protocol``), and CFSD's network, said beside the metrics."""
    p = summary.get("protocol") or {}
    net = summary.get("cfsd_network") or {}
    text = (f"Protocol {p['name']}: {p['description']} ({p['source']})." if p else
            "Protocol: not recorded (a summary from before evaluate.protocol existed).")
    if net:
        text += (f" CFSD network: {net['network']}" + (f" ({net.get('from', '')}; sha256 {str(net.get('sha256', '?'))[:16]}…)."
                                                        if net.get("comparable") else f". {net['note']}."))
    return text + precision_note(summary)


def degenerate_note(summary: dict) -> str:
    """Name every method whose outputs are degenerate (evaluation/degenerate.py), and why: never judged."""
    bad = summary.get("degenerate") or {}
    if not bad:
        return ""
    return (" DEGENERATE outputs, never judged (its claims say 'not evaluated'): "
            + "; ".join(f"{m}: {why}" for m, why in bad.items()) + ".")


def precision_note(summary: dict) -> str:
    """Say which methods' outputs were not computed in the authors' float32, with their measured deviation."""
    records = summary.get("stylize_precision") or {}
    fast = {m: r for m, r in records.items() if not r.get("authors_precision", True)}
    if not records:
        return ""
    if not fast:
        return " Outputs computed in float32, the authors' precision."
    parts = []
    for m, r in fast.items():
        dev = r.get("deviation_from_float32") or {}
        parts.append(f"{m} in {r['compute_dtype']} (differs from float32 by {dev.get('mean_abs_255', '?')}/255 on "
                     f"average, at most {dev.get('max_abs_255', '?')}/255, over {dev.get('pairs', '?')} pairs)")
    return (" Not the authors' precision (stylize.precision opted into the fast path): " + "; ".join(parts) + ".")


def seeds_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Per method with replicate seeds: each seed's mean over the pairs, and the SD over seeds."""
    header = ["method", "seeds"] + [f"{m}: per seed (SD)" for m in SEED_METRICS]
    rows = []
    for method, d in (summary.get("seeds") or {}).items():
        rows.append([method, ", ".join(map(str, d["seeds"]))]
                    + [", ".join(_fmt(v) for v in d["per_seed_mean"][m]) + f" ({_fmt(d['sd_over_seeds'][m])})"
                       for m in SEED_METRICS if m in d["per_seed_mean"]])
    return header, rows


ARTFID_HEADER = ["method", "ArtFID ↓", "FID_N ↓", "content distance (LPIPS) ↓", "N"]


def artfid_section(summary: dict) -> tuple[str, list[list[str]]]:
    """The ArtFID paragraph (how it was computed and the bias at this N, or why it was skipped) and its rows."""
    doc = summary.get("artfid")
    if not doc:
        why = (summary.get("skipped") or {}).get("ArtFID", "not computed by this evaluate run")
        return f"ArtFID: {why}.", []
    rows = []
    for method, vals in summary["metrics"].items():
        if "artfid" in vals:
            a, f = vals["artfid"], vals["fid"]
            rows.append([method, f"{_fmt(a['mean'])} [{_fmt(a['ci95'][0])}, {_fmt(a['ci95'][1])}]",
                         f"{_fmt(f['mean'])} [{_fmt(f['ci95'][0])}, {_fmt(f['ci95'][1])}]",
                         _fmt(vals["lpips"]["mean"]), str(a["n"])])
    w = doc.get("weights") or {}
    text = (f"ArtFID = (1 + content distance) · (1 + FID_N), Wright & Ommer 2022, with their art-trained Inception-v3 "
            f"({w.get('from', '?')}; sha256 {str(w.get('sha256', '?'))[:16]}…, {w.get('checksum', '')}). {doc['mode']}; "
            f"style set: {doc['style_set']}; {doc['preprocessing']}; 95% CIs: percentile bootstrap over pairs. "
            f"{doc['note']}.")
    return text, rows


VERIFY_HEADER = ["method", "the authors' own outputs", "verdict", "worst PSNR as their JPEG", "judged images"]


def verify_rows(train_dir: Path, methods) -> list[list[str]]:
    """Per imported release: ``safin verify-release``'s result as ``train@METHOD`` recorded it."""
    rows = []
    for method in methods:
        f = Path(train_dir) / method / "summary.json"
        t = json.loads(f.read_text()) if f.exists() else {}
        if t.get("origin") != "authors' release":
            continue
        v = t.get("verify_release")
        if not v:
            rows.append([method, "—", "not run (pretrained.verify: false)", "—", "—"])
        elif not v.get("ran"):
            rows.append([method, "—", f"not run: {v.get('why', '?')}", "—", "—"])
        else:
            verdict = {True: f"PASS (every judged image ≥ {v['threshold_db']} dB)",
                       False: f"FAIL: below {v['threshold_db']} dB — this import does not give the authors' outputs",
                       None: "not judged: no image of a size both networks run without padding"}[v["passed"]]
            rows.append([method, f"{v['repo']}@{str(v['commit'])[:7]} ({v['written_by']})", verdict,
                         f"{v['worst_psnr_jpeg_db']} dB", f"{v['judged']} of {len(v['images'])}"])
    return rows


def _md_table(header, rows) -> str:
    def cell(c) -> str:  # a "|" inside a cell (e.g. "KL(p || q)") would split it
        return str(c).replace("|", "\\|")
    out = ["| " + " | ".join(cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def methods_rows(methods: dict[str, dict]) -> list[list[str]]:
    """One row per method: name, label, where it comes from (built in, or the plugin's distribution and
    version), its class."""
    return [[name, m.get("label", name),
             "built in" if m.get("builtin") else f"plugin {m.get('distribution') or '(not installed: imported by path)'} "
                                               f"{m.get('version') or ''}".strip(), m.get("class", "")]
            for name, m in methods.items()]


def beyond_note(summary: dict) -> str:
    """What the "Beyond the paper" section holds: which rivals this run measured beside SAFIN, which it did not."""
    measured = set(summary.get("metrics") or {})
    inside = [label for m, label in RIVALS.items() if m in measured]
    outside = [f"{label} (`{m}`)" for m, label in RIVALS.items() if m not in measured]
    text = ("SAFIN against methods published beside and after it, which its paper never compared with. These claims "
            f"are ours, not the paper's (source column: '{OURS}'): the questions the paper asks of AdaIN, WCT and SANet "
            "(content kept, style reached) and StyleID's CFSD, judged by the same verdict rules as the paper's claims. ")
    if "safin" not in measured:
        return text + "This run has no SAFIN outputs: nothing to compare."
    if inside:
        text += f"Measured here: {', '.join(inside)}. "
    if outside:
        text += (f"Not in this run: {', '.join(outside)}; the pretrained and styleid profiles import their releases "
                 "(add a method to train.methods, stylize.methods and, for its release, pretrained.methods).")
    return text.strip()


def build_report(*, params: dict, summary_path: Path, claims: list[Verdict], figures: list[Path],
                 train_dir: Path, out_dir: Path, inputs: dict[str, Path],
                 survey_path: Path | None = None, speed_path: Path | None = None,
                 methods: dict[str, dict] | None = None, left_out: dict[str, str] | None = None,
                 beyond: list[Verdict] | None = None) -> tuple[Path, Path]:
    """``methods``: stage check_methods' records (``pipeline.method_info.read_info``); ``left_out``: built-in
    methods this run does not include, with why."""
    summary = json.loads(Path(summary_path).read_text())
    method_rows = methods_rows(methods or {})
    profile = params.get("profile", "?")
    env = environment()
    setup = [[k, v] for k, v in env.items()]
    extra = [x for x in (params["train"].get("seeds") or []) if int(x) != int(params["train"]["seed"])]
    setup += [["profile", profile], ["seeds", f"train {params['train']['seed']}"
                                               + (f" (replicates: {', '.join(map(str, extra))})" if extra else
                                                  " (one seed: train.seeds adds replicates)")
                                               + f", stylize {params['stylize']['seed']}, bootstrap {params['evaluate']['seed']}"],
              ["evaluation pairs", str(summary["n_pairs"])]]
    setup += [[f"sha256 {name}", _sha256(p)] for name, p in inputs.items()]
    train_rows = []
    for method in params["train"]["methods"]:
        f = Path(train_dir) / method / "summary.json"
        if f.exists():
            train_rows.append(training_row(method, json.loads(f.read_text())))
    for method, why in (left_out or {}).items():
        train_rows.append([method, f"left out: {why}", "—", "—", "—", "—", "—"])
    enc = summary.get("encoder") or {}
    setup.append(["metrics' encoder", f"{enc.get('name', 'normalised')}: {enc.get('source', 'not recorded')}"])
    claims_on = "; ".join(f"{r[0]}: {r[1]}" for r in train_rows)
    verify_table = verify_rows(Path(train_dir), params["train"]["methods"])
    m_header, m_rows = metrics_rows(summary)
    metrics_note = protocol_note(summary) + degenerate_note(summary)
    artfid_note, artfid_rows = artfid_section(summary)
    from . import published

    published_sections = [published.comparison(t, summary) for t in published.tables().values()]
    seed_header, seed_rows = seeds_rows(summary)
    claim_header = ["claim", "paper", "evidence", "verdict"]
    claim_rows = [[c.claim, c.source, c.evidence, c.verdict] for c in claims]
    beyond = beyond or []
    beyond_text = beyond_note(summary)
    beyond_header = ["claim", "source", "evidence", "verdict"]
    beyond_rows = [[c.claim, c.source, c.evidence, c.verdict] for c in beyond]
    definitions = [[k, v] for k, v in DESCRIPTION.items() if k in (summary.get("definitions") or DESCRIPTION)]

    speed_header = ["method", "mode", "size px", "path", "dtype", "median s", "peak MiB", "images/s",
                    "encoder / decoder / transform s"]
    speed_rows, speed_note = [], "Not measured: run `safin bench` (stage benchmark)."
    if speed_path is not None and Path(speed_path).exists():
        sp = json.loads(Path(speed_path).read_text())
        m = sp["machine"]
        speed_note = (f"Machine: {m.get('cpu') or m['processor']}, {m['cpus']} CPUs, GPU {m['gpu'] or 'none'}, torch {m['torch']}; "
                      f"median of {sp['settings']['runs']} runs after {sp['settings']['warmup']} warm-up, each in a "
                      f"fresh process, random weights. The fast path (benchmark.precision; bf16 where the device runs it "
                      f"natively) is an opt-in for speed: the outputs the report measures are float32 "
                      f"(stylize.precision). Naive / fast time ratio: "
                      + "; ".join(f"{m} " + ", ".join(f"{float(r):.2f}× at {size} px" for size, r in by_size.items())
                                  for m, by_size in (sp.get("ratios") or {}).items()) + ".")
        w = sp.get("wct_transform")
        if w:
            speed_note += (f" WCT transform alone (relu1_1..relu5_1 of a real pair at {w['size']} px): "
                           f"{w['naive']} {w['naive_s']:.3f} s vs {w['fast']} {w['fast_s']:.3f} s = "
                           f"{w['speedup']:.1f}x, max relative difference {w['max_relative_error']:.1e}.")
        for r in sp["results"]:
            parts = r.get("parts_s") or {}
            speed_rows.append([r["method"], r["mode"], r["size"], r["path"],
                               (r.get("dtype", "float32") + (" NHWC" if r.get("channels_last") else "")),
                               f"{r['median_s']:.3f}" if "median_s" in r else "FAILED: " + r.get("error", "?"),
                               f"{r['peak_mib']:.0f}" if "peak_mib" in r else "—",
                               f"{r['images_per_s']:.2f}" if "images_per_s" in r else "—",
                               " / ".join(f"{parts[k]:.2f}" for k in ("encoder", "decoder", "transform and rest"))
                               if parts else "—"])
    study_note_text = "No responses collected yet: the study claims stay inconclusive."
    if survey_path is not None and Path(survey_path).exists():
        study_note_text = study_note(json.loads(Path(survey_path).read_text()))
    verdicts = [[word, meaning] for word, meaning in VERDICTS.items()]
    sources = {"claims": "reports/claims.json (from metrics/per_pair.csv, outputs/train/*/live, outputs/survey/tally.json)",
               "metrics": "metrics/summary.json (per pair: metrics/per_pair.csv)",
               "training": "outputs/train/METHOD/summary.json", "speed": "metrics/speed.json",
               "study": "outputs/survey/tally.json (headline numbers: metrics/survey.json)",
               "methods": "outputs/methods/METHOD.json (stage check_methods)"}
    grid_warning = degenerate_note(summary).strip()
    captions = [(fig, caption(fig) + (f" {grid_warning}" if grid_warning and Path(fig).parent == Path(params["stylize"]["grids"])
                                      else "")) for fig in figures]
    md = [f"# SAFIN reproduction report — profile `{profile}`", "",
          f"> {SCALE_NOTE.get(profile, '')}", "",
          "## The paper's claims", f"Models: {claims_on}.", "", _md_table(claim_header, claim_rows), "",
          _md_table(["verdict", "means"], verdicts), "", f"_Source: {sources['claims']}._", "",
          "## Beyond the paper", beyond_text, "", _md_table(beyond_header, beyond_rows) if beyond_rows else "",
          f"_Source: {sources['claims']}._", "",
          "## Metrics (mean over pairs, bootstrap 95% CI)", metrics_note, "", _md_table(m_header, m_rows), "",
          _md_table(["metric", "definition"], definitions), "", f"_Source: {sources['metrics']}._", "",
          *(["## Seeds (each seed's mean over the pairs)", _md_table(seed_header, seed_rows), "",
             "_Source: metrics/summary.json (seeds; per pair: metrics/per_seed_pair.csv)._", ""] if seed_rows else []),
          "## ArtFID (a set metric)", artfid_note, "", _md_table(ARTFID_HEADER, artfid_rows) if artfid_rows else "",
          f"_Source: {sources['metrics']} (artfid, fid)._", "",
          "## Published numbers beside ours",
          *[line for text, header, rows in published_sections for line in (text, "", _md_table(header, rows), "")],
          "_Source: evaluation/published/ (each table with where it was printed, its protocol and set)._", "",
          "## Methods", _md_table(["method", "label", "source", "class"], method_rows), "",
          f"_Source: {sources['methods']}._", "",
          "## Training", _md_table(TRAIN_HEADER, train_rows), "", f"_Source: {sources['training']}._", "",
          *(["## The authors' releases against their own outputs",
             "Our import of each release run on the inputs whose outputs the authors committed, with the settings of "
             "the code that wrote them, in float32 (`safin verify-release`; docs/data-and-weights.md).", "",
             _md_table(VERIFY_HEADER, verify_table), ""] if verify_table else []),
          "## Speed", speed_note, "", _md_table(speed_header, speed_rows) if speed_rows else "",
          f"_Source: {sources['speed']}._", "",
          "## User study", study_note_text, "", f"_Source: {sources['study']}._", "",
          "## Setup", _md_table(["item", "value"], setup), "",
          "## Figures"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for fig, text in captions:
        rel = Path(*([".."] * len(out_dir.parts))) / fig if not out_dir.is_absolute() else fig
        md += [f"### {fig.stem}", f"![{text}]({rel.as_posix()})", "", f"*{text}* (`{fig.as_posix()}`)", ""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    figures_html = [(f.stem, _embedded(f), text, f.as_posix()) for f, text in captions if f.exists()]
    page = TEMPLATES.get_template("report.html").render(
        profile=profile, scale_note=SCALE_NOTE.get(profile, ""), setup=setup, method_rows=method_rows,
        train_rows=train_rows, train_header=TRAIN_HEADER, claims_on=claims_on,
        verify_rows=verify_table, verify_header=VERIFY_HEADER,
        metrics_header=m_header, metrics_rows=m_rows, metrics_note=metrics_note, artfid_note=artfid_note, artfid_rows=artfid_rows,
        artfid_header=ARTFID_HEADER, published_sections=published_sections, seed_header=seed_header, seed_rows=seed_rows, definitions=definitions, claim_header=claim_header,
        claim_rows=claim_rows, beyond_text=beyond_text, beyond_header=beyond_header, beyond_rows=beyond_rows,
        speed_note=speed_note, speed_header=speed_header, speed_rows=speed_rows,
        study_note=study_note_text, figures=figures_html, verdicts=verdicts, sources=sources)
    html_path = out_dir / "report.html"
    html_path.write_text(page)
    (out_dir / "claims.json").write_text(json.dumps([asdict(c) for c in [*claims, *beyond]], indent=2) + "\n")
    return md_path, html_path
