"""Stage ``report``: claims against measurements, and the Markdown/HTML report."""
from __future__ import annotations

from pathlib import Path

from evaluation.claims import beyond_paper_claims, check_claims
from evaluation.report import build_report

from .method_info import BUILT_IN, pretrained_methods, read_info


def _in_order(info: dict, names) -> dict:
    """The methods' records in params.yaml's order, then any other recorded one."""
    return {**{n: info[n] for n in names if n in info}, **{n: v for n, v in info.items() if n not in names}}


def left_out(params: dict) -> dict[str, str]:
    """Built-in methods in neither ``stylize.methods`` nor ``train.methods``, with why (the ``pretrained``
    profile leaves out the two that have no release)."""
    from safin.io.releases import RELEASES

    used = set(params["stylize"]["methods"]) | set(params["train"]["methods"])
    return {m: ("no released weights of the authors; add it to train.methods and stylize.methods to train it"
                if m not in RELEASES else "not in stylize.methods") for m in BUILT_IN if m not in used}


def report(params: dict) -> tuple[Path, Path]:
    r = params["report"]
    metrics_dir = Path(params["evaluate"]["out"])
    train_dir = Path(params["train"]["out"])
    from .seeds import replicate_seeds

    replicates = {m: replicate_seeds(params, m) for m in params["train"]["methods"]}
    claims = check_claims(metrics_dir / "per_pair.csv", train_dir, Path(r["survey"]) if r.get("survey") else None,
                          replicates=replicates)
    beyond = beyond_paper_claims(metrics_dir / "per_pair.csv")
    grids = Path(params["stylize"]["grids"])
    figures = [grids / f"{n}.png" for n in ("fig2_semantic_awareness", "fig5a_sanet_vs_safin_in_sanet", "fig6_fin_vs_safin")]
    survey_dir = Path(r["survey"]).parent if r.get("survey") else None
    if survey_dir is not None:
        figures += [survey_dir / "fig7_grouped.png", survey_dir / "fig7_stacked.png"]
    figures += [Path(r["curves"])] + sorted(grids.glob("pairs_*.png"))
    inputs = {"pairs.csv": Path(params["data"]["pairs"]), "data/sample/SHA256SUMS": Path(params["data"]["sample_dir"]) / "SHA256SUMS",
              "weights manifest": Path("outputs/weights/manifest.json"), "metrics/summary.json": metrics_dir / "summary.json"}
    return build_report(params=params, summary_path=metrics_dir / "summary.json", claims=claims, beyond=beyond,
                        figures=[f for f in figures if f.exists()], train_dir=train_dir, out_dir=Path(r["out"]),
                        inputs=inputs, survey_path=Path(r["survey"]) if r.get("survey") else None,
                        speed_path=Path(params["benchmark"]["out"]) if "benchmark" in params else None,
                        methods=_in_order(read_info(), params["train"]["methods"]),
                        left_out=left_out(params) if pretrained_methods(params) else None)
