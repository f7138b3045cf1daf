"""`safin cluster submit`: the paper profile as one SLURM array plus a dependent `dvc repro`, and the array
script's preemption logic run by bash with stand-in `safin` and `scontrol` commands (no SLURM here: what SLURM
itself does is the real-cluster test's subject)."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.cluster import PREPARE_STAGES, ClusterConfig, array_script, prepare_script, repro_script, runs, submit
from pipeline.params import apply_profile, load_params

from .conftest import REPO


@pytest.fixture
def paper(tmp_path):
    import shutil

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply_profile("paper", tmp_path / "params.yaml")
    return load_params(tmp_path / "params.yaml")


def test_the_paper_profile_is_an_18_task_array_and_a_dependent_repro(paper, tmp_path, capsys):
    todo = runs(paper)
    assert len(todo) == 18 and len(set(todo)) == 18 and {s for _, s in todo} == {777, 1, 2}
    cfg = ClusterConfig.from_params({**paper["cluster"], "partition": "gpu", "account": "lab",
                                     "extra_sbatch": ["--qos=high"]})
    script = array_script(paper, cfg, tmp_path)
    for line in ("#SBATCH --array=0-17", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@300",
                 "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --qos=high", "#SBATCH --gpus-per-node=1"):
        assert line in script.splitlines()
    table = script.split("RUNS=(")[1].split(")")[0].split()
    assert [tuple(x.split(":")) for x in table] == [(m, str(s)) for m, s in todo]
    assert "torchrun" not in script  # one GPU per run: the trainer alone
    repro = repro_script(paper, cfg, tmp_path)
    assert repro.splitlines()[-1] == "dvc repro" and "--array" not in repro
    prepare = prepare_script(paper, cfg, tmp_path)
    assert prepare.splitlines()[-1] == "dvc repro fetch_weights fetch_data check_methods" and "--gpus" not in prepare
    assert repro_script(paper, ClusterConfig.from_params({"repro_targets": ["train", "stylize"]}),
                        tmp_path).splitlines()[-1] == "dvc repro train stylize"
    from pipeline.cli import main

    os.chdir(tmp_path)
    try:
        assert main(["cluster", "submit", "--dry-run", "--params", str(tmp_path / "params.yaml")]) == 0
    finally:
        os.chdir(REPO)
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-17" in out and "dvc repro\n" in out and "18 training tasks" in out
    assert "dvc repro fetch_weights fetch_data check_methods" in out
    for name in ("prepare.sbatch", "train_array.sbatch", "repro.sbatch"):
        assert (tmp_path / "outputs/cluster" / name).exists()


def test_the_prepare_job_makes_exactly_what_training_reads():
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = {stage: [next(iter(o)) if isinstance(o, dict) else o for o in spec.get("do", spec).get("outs", [])]
            for stage, spec in stages.items()}
    deps = stages["train"]["do"]["deps"]
    upstream = {stage for stage, paths in outs.items() if stage != "train"
                for dep in deps for out in paths if dep == out or dep.startswith(out.rstrip("/") + "/")}
    assert upstream == set(PREPARE_STAGES)


def test_a_run_over_two_nodes_uses_torchrun_with_a_c10d_rendezvous(paper, tmp_path):
    cfg = ClusterConfig.from_params({"nodes_per_run": 2, "gpus_per_node": 4, "rdzv_port": 29511})
    script = array_script(paper, cfg, tmp_path)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=4" in script
    assert ('srun --kill-on-bad-exit=1 torchrun --nnodes="$SLURM_NNODES" --nproc_per_node=4 --rdzv_backend=c10d '
            '--rdzv_endpoint="$HEAD:29511"') in script
    with pytest.raises(ValueError, match="unknown key"):
        ClusterConfig.from_params({"gpus": 2})


def test_submit_chains_prepare_array_and_repro_by_their_job_ids(paper, tmp_path):
    log = tmp_path / "sbatch.log"
    fake = tmp_path / "sbatch"
    fake.write_text(f'#!/bin/bash\necho "$@" >> {log}\necho "$(wc -l < {log})42;cluster"\n')
    fake.chmod(0o755)
    doc = submit(paper, tmp_path, sbatch=str(fake))
    calls = log.read_text().splitlines()
    assert (doc["prepare_job"], doc["array_job"], doc["repro_job"]) == ("142", "242", "342")
    assert calls[0] == f"--parsable {tmp_path}/outputs/cluster/prepare.sbatch"
    assert calls[1] == f"--parsable --dependency=afterok:142 {tmp_path}/outputs/cluster/train_array.sbatch"
    assert calls[2] == f"--parsable --dependency=afterok:242 {tmp_path}/outputs/cluster/repro.sbatch"


def _task(tmp_path, script: str, exit_code: int, restart: int = 0, signal_after: float | None = None):
    """Run the array script's task 1 under bash, with `safin` and `scontrol` stand-ins on PATH."""
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    (bin_ / "safin").write_text(
        "#!/bin/bash\n"
        f'echo "safin $*" >> {tmp_path}/calls\n'
        f"trap 'echo checkpoint >> {tmp_path}/calls; exit 130' TERM\n"
        f"touch {tmp_path}/started\n"
        f"for i in $(seq {100 if signal_after is not None else 4}); do sleep 0.05; done\nexit {exit_code}\n")
    (bin_ / "scontrol").write_text(
        "#!/bin/bash\n"
        f'if [ "$1" = show ]; then echo node1; else echo "scontrol $*" >> {tmp_path}/calls; fi\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    (tmp_path / "job.sh").write_text(script)
    (tmp_path / "started").unlink(missing_ok=True)
    (tmp_path / "calls").unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "1",
           "SLURM_ARRAY_JOB_ID": "77", "SLURM_JOB_ID": "78", "SLURM_JOB_NODELIST": "node1", "SLURM_NNODES": "1",
           "SLURM_RESTART_COUNT": str(restart)}
    proc = subprocess.Popen(["bash", str(tmp_path / "job.sh")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if signal_after is not None:
        deadline = time.time() + 20
        while not (tmp_path / "started").exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(signal_after)
        proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@… sends the batch shell
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, (tmp_path / "calls").read_text().splitlines(), out


def test_the_array_task_checkpoints_and_requeues_on_slurms_warning_and_only_then(paper, tmp_path):
    script = array_script(paper, ClusterConfig.from_params({"gpus_per_node": 0}), tmp_path)
    method, seed = runs(paper)[1]
    rc, calls, out = _task(tmp_path, script, exit_code=0, signal_after=0.2)
    assert calls == [f"safin train --method {method} --seed {seed} --no-progress", "checkpoint",
                     "scontrol requeue 77_1"] and rc == 0, out
    rc, calls, out = _task(tmp_path, script, exit_code=3)          # a failure of its own: not requeued
    assert rc == 3 and not any(c.startswith("scontrol") for c in calls), out
    rc, calls, out = _task(tmp_path, script, exit_code=0, restart=3, signal_after=0.2)  # requeued enough already
    assert rc == 1 and "checkpoint" in calls and not any(c.startswith("scontrol") for c in calls)
    assert "preempted more than 3 times" in out
    rc, calls, _ = _task(tmp_path, script, exit_code=0)            # a clean finish
    assert rc == 0 and calls == [f"safin train --method {method} --seed {seed} --no-progress"]
    assert Path(tmp_path / "job.sh").read_text().startswith("#!/bin/bash")
