"""``safin cluster submit``: the profile's training runs as one SLURM job array, and ``dvc repro`` after it.

First a short job (:func:`prepare_script`) runs ``dvc repro`` of the stages training reads (the weights, the data,
the methods' records: :data:`PREPARE_STAGES`). Then every (method, seed) of ``train.methods`` × (``train.seed`` +
``train.seeds``) is one task of an array job (:func:`array_script`, ``afterok`` on the first): ``safin train --method M --seed S`` inside, under ``torchrun`` when a run spans several
GPUs or nodes (c10d rendezvous on the allocation's first node). A second job (:func:`repro_script`) depends on the
array (``afterok``) and runs ``dvc repro`` (or ``cluster.repro_targets``), which finds every run trained (``train@M`` resumes each at its last
step: nothing is trained again) and does the rest. All three are plain sbatch files, written to ``cluster.out`` so a
researcher can read and edit them; ``--dry-run`` prints them and submits nothing.

Preemption and time limits: the array asks SLURM for ``USR1`` ``cluster.signal_seconds`` before the end
(``--signal=B:USR1@…``) and is requeueable. The batch shell passes it on as ``SIGTERM``; the trainer writes a
checkpoint at once and exits (status 130), and the shell requeues the task, which resumes from that checkpoint
with the same trajectory (the trainer's resume is bit-identical). A task that fails otherwise is not requeued,
and a task preempted more than ``cluster.max_requeues`` times stops. The partition, account, time limit, GPUs and
nodes per run, CPUs, memory and extra ``#SBATCH`` lines come from ``cluster`` in params.yaml.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .seeds import replicate_seeds


@dataclass
class ClusterConfig:
    partition: str | None = None
    account: str | None = None
    time: str = "1-00:00:00"            # per task (the paper's runs: about 2.7 h each on an H100)
    gpus_per_node: int = 1              # 0: CPU only (the test cluster)
    nodes_per_run: int = 1
    cpus_per_task: int = 8
    mem: str | None = "64G"
    signal_seconds: int = 300           # USR1 this long before the time limit: time to write a checkpoint
    max_requeues: int = 3               # preemptions or time limits a task may take before it stops
    rdzv_port: int = 29500
    setup: str = ""                     # shell lines before training (e.g. `module load cuda; source .venv/bin/activate`)
    extra_sbatch: list[str] = field(default_factory=list)   # more #SBATCH options, e.g. ["--qos=high"]
    out: str = "outputs/cluster"        # the scripts and the jobs' logs
    repro_targets: list[str] = field(default_factory=list)   # the last job's `dvc repro` targets ([]: everything)

    @classmethod
    def from_params(cls, section: dict | None) -> ClusterConfig:
        section = dict(section or {})
        unknown = set(section) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"cluster: unknown key(s) {sorted(unknown)} (known: {sorted(cls.__dataclass_fields__)})")
        cfg = cls(**{k: v for k, v in section.items() if v is not None or k in ("partition", "account", "mem")})
        if cfg.nodes_per_run < 1 or cfg.gpus_per_node < 0:
            raise ValueError("cluster: nodes_per_run must be at least 1 and gpus_per_node at least 0")
        return cfg


#: the stages whose outputs ``train@M`` reads (its ``deps`` in dvc.yaml; tests/test_cluster.py holds them equal)
PREPARE_STAGES = ("fetch_weights", "fetch_data", "check_methods")


def runs(params: dict) -> list[tuple[str, int]]:
    """Every (method, seed) the profile trains, in train.methods order; the authors' releases are imported by
    ``dvc repro``, not trained."""
    from .method_info import pretrained_methods

    imported = set(pretrained_methods(params))
    main = int(params["train"]["seed"])
    return [(m, s) for m in params["train"]["methods"] if m not in imported
            for s in (main, *replicate_seeds(params, m))]


def _header(cfg: ClusterConfig, name: str, log: str) -> list[str]:
    lines = [f"#SBATCH --job-name={name}", f"#SBATCH --time={cfg.time}", f"#SBATCH --output={log}",
             "#SBATCH --open-mode=append"]
    lines += [f"#SBATCH --partition={cfg.partition}"] if cfg.partition else []
    lines += [f"#SBATCH --account={cfg.account}"] if cfg.account else []
    lines += [f"#SBATCH --mem={cfg.mem}"] if cfg.mem else []
    return lines


def array_script(params: dict, cfg: ClusterConfig, repo: Path) -> str:
    """The sbatch file of the training array: one task per (method, seed)."""
    todo = runs(params)
    if not todo:
        raise ValueError("cluster: the profile trains nothing (every method is an authors' release)")
    out = Path(cfg.out)
    lines = ["#!/bin/bash", *_header(cfg, "safin-train", f"{out}/logs/train-%A_%a.out"),
             f"#SBATCH --array=0-{len(todo) - 1}", f"#SBATCH --nodes={cfg.nodes_per_run}",
             "#SBATCH --ntasks-per-node=1", f"#SBATCH --cpus-per-task={cfg.cpus_per_task}",
             "#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{cfg.signal_seconds}"]
    lines += [f"#SBATCH --gpus-per-node={cfg.gpus_per_node}"] if cfg.gpus_per_node else []
    lines += [f"#SBATCH {x}" for x in cfg.extra_sbatch]
    table = " ".join(f"{m}:{s}" for m, s in todo)
    world = cfg.nodes_per_run * max(cfg.gpus_per_node, 1)
    train = "safin train --method \"$METHOD\" --seed \"$SEED\" --no-progress"
    if world > 1:  # one torchrun per node; c10d rendezvous on the allocation's first node
        launch = (f"srun --kill-on-bad-exit=1 torchrun --nnodes=\"$SLURM_NNODES\" "
                  f"--nproc_per_node={max(cfg.gpus_per_node, 1)} --rdzv_backend=c10d "
                  f"--rdzv_endpoint=\"$HEAD:{cfg.rdzv_port}\" --rdzv_id=\"$SLURM_JOB_ID\" --no-python {train}")
    else:
        launch = train
    lines += [
        "",
        "# One task per (method, seed) of the profile; generated by `safin cluster submit` (pipeline/cluster.py).",
        "set -uo pipefail",
        f"cd {shlex.quote(str(repo))}",
        *([cfg.setup] if cfg.setup else []),
        f"RUNS=({table})",
        'IFS=: read -r METHOD SEED <<< "${RUNS[$SLURM_ARRAY_TASK_ID]}"',
        'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'echo "task $SLURM_ARRAY_TASK_ID: $METHOD seed $SEED on $SLURM_JOB_NODELIST (restart ${SLURM_RESTART_COUNT:-0})"',
        'preempted=0; child=""',
        "# SLURM's USR1 before the time limit, or a TERM (preemption, scancel): the trainer checkpoints on TERM",
        'on_signal() { preempted=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }',
        "trap on_signal USR1 TERM",
        f"{launch} &",
        "child=$!",
        'wait "$child"; status=$?',
        'while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done   # a trapped signal ends the first wait',
        'if [ "$preempted" = 1 ]; then',
        f'  if [ "${{SLURM_RESTART_COUNT:-0}}" -lt {cfg.max_requeues} ]; then',
        '    echo "checkpoint written; requeueing ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        '    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        "    exit 0",
        "  fi",
        f'  echo "preempted more than {cfg.max_requeues} times: not requeued; resubmit to go on" >&2',
        "  exit 1",
        "fi",
        'exit "$status"   # a failure that is not a preemption is not requeued',
        ""]
    return "\n".join(lines)


def _dvc_job(cfg: ClusterConfig, repo: Path, name: str, comment: str, command: str, gpus: bool) -> str:
    out = Path(cfg.out)
    lines = ["#!/bin/bash", *_header(cfg, name, f"{out}/logs/{name.removeprefix('safin-')}-%j.out"),
             "#SBATCH --nodes=1", f"#SBATCH --cpus-per-task={cfg.cpus_per_task}"]
    lines += [f"#SBATCH --gpus-per-node={cfg.gpus_per_node}"] if cfg.gpus_per_node and gpus else []
    lines += [f"#SBATCH {x}" for x in cfg.extra_sbatch]
    lines += ["", f"# {comment}", "set -euo pipefail", f"cd {shlex.quote(str(repo))}",
              *([cfg.setup] if cfg.setup else []), command, ""]
    return "\n".join(lines)


def prepare_script(params: dict, cfg: ClusterConfig, repo: Path) -> str:
    """The sbatch file of the job before the array: what every training task reads, made once (no GPU)."""
    return _dvc_job(cfg, repo, "safin-prepare", "Before the training array: the weights, the data and the methods' "
                    "records every task reads.", "dvc repro " + " ".join(PREPARE_STAGES), gpus=False)


def repro_script(params: dict, cfg: ClusterConfig, repo: Path) -> str:
    """The sbatch file of the job after the array (its ``afterok`` dependency is given at submission)."""
    targets = "".join(f" {shlex.quote(t)}" for t in cfg.repro_targets)
    return _dvc_job(cfg, repo, "safin-repro", "After every training task succeeded: the rest of the pipeline; "
                    "train@M finds each run trained.", f"dvc repro{targets}", gpus=True)


#: the three jobs in submission order: (key, file name, script)
JOBS = (("prepare", "prepare.sbatch", prepare_script), ("array", "train_array.sbatch", array_script),
        ("repro", "repro.sbatch", repro_script))


def write_scripts(params: dict, cfg: ClusterConfig, repo: Path) -> dict[str, Path]:
    out = Path(repo) / cfg.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, name, make in JOBS:
        paths[key] = out / name
        paths[key].write_text(make(params, cfg, repo))
    return paths


def submit(params: dict, repo: Path, dry_run: bool = False, sbatch: str = "sbatch") -> dict:
    """Write the three scripts; submit the prepare job, the array ``afterok`` on it, then the repro job ``afterok`` on
    the array (unless ``dry_run``)."""
    cfg = ClusterConfig.from_params(params.get("cluster"))
    paths = write_scripts(params, cfg, Path(repo).resolve())
    doc: dict = {f"{key}_script": str(path) for key, path in paths.items()}
    doc["tasks"] = len(runs(params))
    if dry_run:
        return doc
    def run(*args) -> str:
        try:
            got = subprocess.run([sbatch, "--parsable", *args], capture_output=True, text=True, check=True)
        except FileNotFoundError:
            raise RuntimeError(f"{sbatch}: not found; run this on the cluster's login node (or --dry-run)") from None
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"sbatch {' '.join(args)}: {e.stderr.strip() or e.returncode}") from None
        return got.stdout.strip().split(";")[0]
    doc["prepare_job"] = run(str(paths["prepare"]))
    doc["array_job"] = run(f"--dependency=afterok:{doc['prepare_job']}", str(paths["array"]))
    doc["repro_job"] = run(f"--dependency=afterok:{doc['array_job']}", str(paths["repro"]))
    return doc
