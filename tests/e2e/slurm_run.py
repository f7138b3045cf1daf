"""The real-SLURM run behind ``tests/e2e/test_slurm_cluster.py``, done once a session in the background (a
:class:`~tests.e2e.conftest.BackgroundRun`: most of its minutes are SLURM's waits, which the unit tests fill).

A one-node cluster on this machine (``tests/local_slurm.py``: munged, slurmctld, slurmd), a copy of this repository
on the ``ci`` profile with two methods × two seeds, ``safin cluster submit`` as a user runs it; one array task is
preempted midway the way SLURM warns before a time limit (``scancel --signal=USR1 --batch``: what
``--signal=B:USR1@…`` sends the batch shell). Then the same (method, seed) trained again without interruption,
outside SLURM, for the trajectory comparison. The cluster is stopped and removed whatever happens (its logs kept
next to the repository for a failure's inspection).
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import yaml

from ..local_slurm import LocalSlurm, missing

METHODS = ("wct", "adain")
SEEDS = (777, 1)
# the array's last task (tasks are train.methods × (train.seed, *train.seeds)): a replicate seed, signalled once no
# task of the array is pending. SLURM 22.05 answers a signal to an array task while any task of its array is
# pending (a requeued one too) with "Job can not be altered now" after delivering it to the running ones, and
# scancel then retries every 5-11 s until it lands: on the requeued task, a second preemption (measured)
PREEMPTED = ("adain", 1)
PREEMPTED_TASK = 3
PREEMPTED_ITERATIONS = 30    # AdaIN's runs: long enough to be signalled midway (the ci recipe's 4 steps are not): 25
                             # steps after the signal, about 9 s in float32 on one Zen 5 core, more under the suite's load
SIGNAL_AFTER_ROWS = 6        # losses logged (a header and 5 steps) before the signal


def losses(run: Path) -> list[str]:
    return (run / "live/plots/metrics/loss/total.tsv").read_text().splitlines()


def job_logs(repo: Path) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted((repo / "outputs/cluster/logs").glob("*")))


def slurm_run(tmp: Path, environ: dict, cache: Path) -> dict:
    from .conftest import base_env, copy_repo, sh

    absent = missing()
    assert not absent, f"the real-SLURM test needs {absent}: apt-get install slurm-wlm munge (tests/ensure_slurm.sh)"
    slurm = LocalSlurm(tmp / "slurm", cpus=2)
    try:
        slurm.start()
        env = slurm.env(base_env(environ, SAFIN_OFFLINE="1", SAFIN_CACHE=str(cache)))
        repo = copy_repo(tmp / "repo", env)
        sh([sys.executable, "-m", "pipeline.cli", "profile", "ci"], repo, env)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        for section in params.values():   # the two methods wherever the profile lists methods (stylize, study…)
            if isinstance(section, dict) and isinstance(section.get("methods"), list):
                section["methods"] = [m for m in section["methods"] if m in METHODS]
        # float32: this run is compared with an uninterrupted run on this machine, not with the gate's reference
        # frozen elsewhere (what the ci profile's float64 is for); AdaIN's 40 steps took 53 s of one Zen 5 core in
        # float64, 21 s in float32, and the four AdaIN runs and two WCT runs were 190 s of the suite's CPU
        params["train"].update(methods=list(METHODS), seeds=[SEEDS[1]], checkpoint_every=1000, precision="fp32")
        params["train"]["method_overrides"]["adain"] = {"max_iter": PREEMPTED_ITERATIONS}
        params["cluster"].update(gpus_per_node=0, cpus_per_task=1, mem=None, time="30:00", repro_targets=["train"])
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        out = sh([sys.executable, "-m", "pipeline.cli", "cluster", "submit"], repo, env)
        prepare, array, repro = re.search(r"prepare as job (\d+), the training array (\d+) .* as job (\d+)",
                                          out).groups()
        runs = {(m, s): repo / "outputs/train" / m / ("" if s == SEEDS[0] else f"seeds/seed-{s}")
                for m in METHODS for s in SEEDS}
        preempted = runs[PREEMPTED]
        deadline = time.time() + 600
        def ready() -> bool:
            queue = slurm.run("squeue", "-h", "-j", array, "-o", "%T").stdout.split()
            return ("PENDING" not in queue and (preempted / "live/plots/metrics/loss/total.tsv").exists()
                    and len(losses(preempted)) >= SIGNAL_AFTER_ROWS)
        while not ready():
            queue = slurm.run("squeue", "-h", "-o", "%i %T %r").stdout
            assert time.time() < deadline and "DependencyNeverSatisfied" not in queue, queue + job_logs(repo)
            time.sleep(0.1)
        rows_at_signal = len(losses(preempted))
        signalled = slurm.run("scancel", "--signal=USR1", "--batch", "-v", f"{array}_{PREEMPTED_TASK}")
        assert "retrying" not in signalled.stderr.lower(), signalled.stderr   # delivered once, at the first try
        slurm.wait_idle(timeout=900)
        tasks = [f"{array}_{i}" for i in range(len(runs))]
        jobs = {job: slurm.job(job) for job in (prepare, *tasks, repro)}

        # the same run uninterrupted, outside SLURM
        reference = tmp / "uninterrupted"
        sh([sys.executable, "-m", "pipeline.cli", "train", "--method", PREEMPTED[0], "--seed", str(PREEMPTED[1]),
            "--out-dir", str(reference), "--no-progress"], repo, env)
        reference = reference / "seeds" / f"seed-{PREEMPTED[1]}"   # a replicate's folder under --out-dir
    finally:
        slurm.stop(keep_logs=tmp / "slurm-logs")
    return {"repo": repo, "params": params, "prepare": prepare, "array": array, "repro": repro, "tasks": tasks,
            "jobs": jobs, "runs": runs, "reference": reference, "rows_at_signal": rows_at_signal,
            "logs": job_logs(repo)}
