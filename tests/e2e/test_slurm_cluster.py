"""``safin cluster submit`` on a real SLURM (the run: ``tests/e2e/slurm_run.py``): the ``ci`` profile's training for
two methods × two seeds as the array, one task preempted midway, the dependent job's ``dvc repro``.

Checked: every job and task completed; the preempted task checkpointed, was requeued by its own script, resumed
from that checkpoint, and its loss trajectory and weights equal an uninterrupted run's bit for bit (float32 on this
machine, the ci profile's other settings); the prepare job ended before any task started and the repro job started after every task ended;
``dvc repro`` then trained nothing (every run's ``summary.json`` says it resumed at its last iteration). The repro
job runs ``dvc repro train`` (``cluster.repro_targets``): the rest of the pipeline after training is what
``tests/e2e/test_dvc_pipeline.py`` runs.
"""
from __future__ import annotations

import json
import re

import pytest
import torch

from .slurm_run import PREEMPTED, PREEMPTED_ITERATIONS, PREEMPTED_TASK, losses

pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.timeout(1500)]  # the first test waits for the run (3-4 min)


def test_every_task_and_job_completed_in_order(slurm_run):
    jobs, tasks = slurm_run["jobs"], slurm_run["tasks"]
    for job, info in jobs.items():
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (job, info, slurm_run["logs"])
    assert jobs[slurm_run["prepare"]]["EndTime"] <= min(jobs[t]["StartTime"] for t in tasks)
    assert jobs[slurm_run["repro"]]["StartTime"] >= max(jobs[t]["EndTime"] for t in tasks)
    restarts = [int(jobs[t]["Restarts"]) for t in tasks]
    assert restarts == [int(i == PREEMPTED_TASK) for i in range(len(tasks))], (restarts, slurm_run["logs"])


def test_the_preempted_task_checkpointed_requeued_and_resumed_where_it_stopped(slurm_run):
    task = f"{slurm_run['array']}_{PREEMPTED_TASK}"
    log = (slurm_run["repo"] / f"outputs/cluster/logs/train-{task}.out").read_text()
    method, seed = PREEMPTED
    assert f"task {PREEMPTED_TASK}: {method} seed {seed}" in log and "(restart 1)" in log, log
    assert "(restart 2)" not in log, log
    assert log.count("checkpoint saved") == 1 and f"requeueing {task}" in log, log
    resumed = re.search(rf"resuming {method} from iteration (\d+)", log)
    # stopped midway: after the steps logged when the signal went, before the end
    assert resumed and slurm_run["rows_at_signal"] - 1 <= int(resumed.group(1)) < PREEMPTED_ITERATIONS, log


def test_the_preempted_runs_trajectory_is_an_uninterrupted_runs(slurm_run):
    run, ref = slurm_run["runs"][PREEMPTED], slurm_run["reference"]
    assert len(losses(ref)) == PREEMPTED_ITERATIONS + 1   # a header and every step
    assert losses(run) == losses(ref)
    a, b = (torch.load(r / "weights.pt", weights_only=False)["state_dict"] for r in (run, ref))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_dependent_dvc_repro_trained_nothing(slurm_run):
    log = (slurm_run["repo"] / f"outputs/cluster/logs/repro-{slurm_run['repro']}.out").read_text()
    assert {"train@adain", "train@wct"} <= set(re.findall(r"Running stage '([^']+)'", log)), log
    for (method, seed), run in slurm_run["runs"].items():
        summary = json.loads((run / "summary.json").read_text())
        want = PREEMPTED_ITERATIONS if method == "adain" else slurm_run["params"]["train"]["max_iter"]
        # finished in the array, and found so by the repro job's `safin train`
        assert summary["iterations"] == summary["resumed_from"] == want, (method, seed, summary)
