"""What stage ``check_methods`` recorded about each method (``outputs/methods/NAME.json``), read without
torch: the survey, the grids and the report take the methods' labels from here, so a label lives in one
place, the method's class (``StyleTransfer.label``)."""
from __future__ import annotations

import json
from pathlib import Path

#: where stage ``check_methods`` writes one JSON file per method (dvc.yaml names the same folder)
METHODS_DIR = Path("outputs/methods")


def read_info(folder: Path = METHODS_DIR) -> dict[str, dict]:
    """``{name: record}`` of every method recorded in ``folder`` (empty when the stage has not run)."""
    folder = Path(folder)
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(f.read_text())
            out[doc["name"]] = doc
        except (ValueError, KeyError) as e:
            raise ValueError(f"{f}: not a method record ({type(e).__name__}: {e}); run `safin check-methods`") from None
    return out


def labels(names, folder: Path = METHODS_DIR) -> dict[str, str]:
    """``{name: label}`` for ``names``; a method without a record is labelled by its name."""
    info = read_info(folder)
    return {n: info.get(n, {}).get("label") or n for n in names}


#: the built-in methods (``baselines.METHOD_NAMES``, restated here so the report needs no model code; a test
#: holds the two equal)
BUILT_IN = ("safin", "safin_fin", "sanet", "sanet_safin", "adain", "wct")


def pretrained_methods(params: dict) -> list[str]:
    """``pretrained.methods``: the methods whose authors' release replaces training."""
    return list((params.get("pretrained") or {}).get("methods") or [])

