"""Training seeds: ``train.seed`` trains the models every stage uses (``train.out/METHOD``); each seed of
``train.seeds`` besides it trains a replicate (``train.out/METHOD/seeds/seed-S``), stylized beside the main
outputs (``stylize.out/METHOD/seeds/seed-S``) and measured into ``metrics/per_seed_pair.csv``, so the claims
can take seed-to-seed variance into their CIs (``evaluation/claims.py``). A method imported from the authors'
release has one seed: the release."""
from __future__ import annotations

from pathlib import Path


def replicate_seeds(params: dict, method: str | None = None) -> list[int]:
    """The seeds of ``train.seeds`` other than ``train.seed``, in order, each once; none for a method whose
    weights are the authors' release."""
    from .method_info import pretrained_methods

    t = params["train"]
    if method is not None and method in pretrained_methods(params):
        return []
    main = int(t["seed"])
    return [s for s in dict.fromkeys(int(x) for x in (t.get("seeds") or [])) if s != main]


def seed_folder(root: Path, method: str, seed: int) -> Path:
    """Where replicate ``seed`` of ``method`` lives under ``root`` (``train.out`` or ``stylize.out``)."""
    return Path(root) / method / "seeds" / f"seed-{seed}"
