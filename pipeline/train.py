"""Stage ``train@METHOD``: build the trainer's config from ``params.yaml`` and train one method."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import baselines  # registers every built-in method; resolves plugins
from safin.io.weights import ensure_encoder_weights
from safin.training import TrainConfig, train

#: keys of ``method_overrides`` that are trainer settings; the rest go to the method's constructor
TRAINER_KEYS = {f.name for f in TrainConfig.__dataclass_fields__.values()}


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["compile=true", "num_workers=8"]`` -> ``{"compile": True, "num_workers": 8}`` (values in YAML);
    every key must be a trainer setting."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        if key not in TRAINER_KEYS or key == "method":
            raise ValueError(f"--set {item!r}: {key!r} is not a trainer setting ({', '.join(sorted(TRAINER_KEYS - {'method'}))})")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key] = parsed
    return out


def config_from_params(params: dict[str, Any], method: str, **overrides) -> TrainConfig:
    """The trainer's config for ``method``: a name in ``train.methods``, or a one-off
    ``package.module:Class`` (its class's ``name`` names the run)."""
    t = params["train"]
    if ":" in method:
        method = baselines.resolve(method).name
    elif method not in t["methods"]:
        raise ValueError(f"method {method!r} is not in train.methods {t['methods']}")
    per_method = dict(t.get("method_overrides", {}).get(method) or {})
    trainer = {k: per_method.pop(k) for k in list(per_method) if k in TRAINER_KEYS}
    trainer = {k: v for k, v in trainer.items() if v is not None}  # null: the train.* value
    data_out = Path(params["data"]["out"])
    cfg = dict(
        method=method, content_dir=str(data_out / "content"), style_dir=str(data_out / "style"),
        out_dir=str(Path(t["out"]) / method), max_iter=int(t["max_iter"]), batch_size=int(t["batch_size"]),
        lr=float(t["lr"]), lr_decay=float(t["lr_decay"]), crop=int(t["crop"]), seed=int(t["seed"]),
        deterministic=bool(t["deterministic"]), device=str(t["device"]), compile=bool(t["compile"]),
        precision=str(t.get("precision", "auto")), channels_last=t.get("channels_last", "auto"),
        num_workers=t["num_workers"], checkpoint_every=int(t["checkpoint_every"]),
        keep_checkpoints=int(t["keep_checkpoints"]), encoder_weights=str(t["encoder_weights"]),
        method_kwargs=per_method,
    )
    cfg.update(trainer)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**cfg)


def run(params: dict[str, Any], method: str, only_seed: int | None = None, **overrides) -> dict:
    """Stage ``train@METHOD``: ``train.seed``'s run into ``train.out/METHOD``, then one replicate per further seed
    of ``train.seeds`` (:mod:`pipeline.seeds`), each resumable on its own; an authors' release instead of
    training where ``pretrained.methods`` names the method. ``only_seed``: that one run alone (``safin train
    --seed S``: seeds in parallel, on several machines; the stage then finds them trained and resumes nothing)."""
    from .method_info import pretrained_methods
    from .pretrained import import_release
    from .seeds import replicate_seeds, seed_folder

    seeds_dir = Path(params["train"]["out"]) / method / "seeds"  # a stage output, also when it stays empty
    seeds_dir.mkdir(parents=True, exist_ok=True)
    if method in pretrained_methods(params):  # the authors' release instead of training (profile pretrained)
        if method not in params["train"]["methods"]:
            raise ValueError(f"method {method!r} is not in train.methods {params['train']['methods']}")
        return import_release(params, method)
    replicates = replicate_seeds(params, method)
    main_seed = int(params["train"]["seed"])
    if only_seed is not None and int(only_seed) not in (main_seed, *replicates):
        raise ValueError(f"--seed {only_seed}: not train.seed ({main_seed}) nor one of train.seeds {replicates}")
    cls = baselines.resolve(method)  # a plugin: imported and registered here
    cfg = config_from_params(params, method, **overrides)
    ensure_encoder_weights(cfg.encoder_weights)
    if not baselines.plugins.is_builtin(cls):  # seconds now, rather than a crash an hour into training
        baselines.plugins.check_contract(cls, cfg.encoder_weights)
    summary: dict = {}
    if only_seed is None or int(only_seed) == main_seed:
        summary = train(cfg)
        _report(method, summary)
    for seed in replicates:
        if only_seed is not None and seed != int(only_seed):
            continue
        # under --out-dir X (the main run's folder) a replicate is X/seeds/seed-S, as under train.out/METHOD
        folder = (Path(overrides["out_dir"]) / "seeds" / f"seed-{seed}" if overrides.get("out_dir")
                  else seed_folder(params["train"]["out"], method, seed))
        rep = config_from_params(params, method, **{**overrides, "seed": seed, "out_dir": str(folder)})
        rep_summary = train(rep)
        _report(f"{method} (seed {seed})", rep_summary)
        summary = summary or rep_summary
    return summary


def _report(name: str, summary: dict) -> None:
    if summary.get("images_per_s"):
        print(f"{name}: {summary['iterations']} iterations, {summary['images_per_s']:.2f} images/s on "
              f"{summary['device']}, final losses {summary['final_losses']}")
