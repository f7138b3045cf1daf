"""The trainer: deterministic data, resume after SIGKILL with an identical trajectory, corrupt
checkpoints, Ctrl-C, and DDP (gloo, 2 processes) against single-process training."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import baselines  # noqa: F401  (registers the methods)
from safin.training import PairStream, PositionSampler, TrainConfig, find_resumable, train

from .conftest import REPO


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for role, files in (("content", sorted((REPO / "data/sample/content").glob("*.jpg"))[:6]),
                        ("style", sorted((REPO / "data/sample/style").glob("*.jpg"))[:4])):
        (root / role).mkdir()
        for f in files:
            Image.open(f).convert("RGB").resize((80, 72)).save(root / role / f.name)
    return root


def config(data, out, **kw):
    base = dict(method="adain", content_dir=str(data / "content"), style_dir=str(data / "style"), out_dir=str(out),
                max_iter=8, batch_size=2, crop=32, checkpoint_every=2, num_workers=0, encoder_weights="random",
                progress=False, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def losses(out: Path, name="total") -> list[float]:
    with open(out / "live/plots/metrics/loss" / f"{name}.tsv") as f:
        return [float(r[name]) for r in csv.DictReader(f, delimiter="\t")]


def steps(out: Path) -> list[int]:
    with open(out / "live/plots/metrics/loss/total.tsv") as f:
        return [int(r["step"]) for r in csv.DictReader(f, delimiter="\t")]


RUNNER = "import json, logging, sys; import baselines; logging.basicConfig(level=logging.INFO); from safin.training import TrainConfig, train; train(TrainConfig(**json.loads(sys.argv[1])))"


def spawn(cfg: TrainConfig) -> subprocess.Popen:
    import dataclasses

    return subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(dataclasses.asdict(cfg))], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_data_order_is_a_pure_function_of_position(tiny_data):
    files_c = sorted((tiny_data / "content").glob("*.jpg"))
    files_s = sorted((tiny_data / "style").glob("*.jpg"))
    a, b = PairStream(files_c, files_s, 32, seed=1), PairStream(files_c, files_s, 32, seed=1)
    for p in (0, 5, 6, 17, 100):
        ca, sa = a[p]
        cb, sb = b[p]
        assert torch.equal(ca, cb) and torch.equal(sa, sb) and ca.shape == (3, 32, 32)
    assert not torch.equal(a[0][0], PairStream(files_c, files_s, 32, seed=2)[0][0])
    # every content image is seen once per epoch
    seen = {a._index(0, 6, p) for p in range(6)}
    assert seen == set(range(6))


def test_position_sampler_splits_each_global_batch_across_ranks():
    full = list(PositionSampler(3, 5, 4))
    r0, r1 = list(PositionSampler(3, 5, 4, 0, 2)), list(PositionSampler(3, 5, 4, 1, 2))
    assert full == list(range(12, 20))
    assert sorted(r0 + r1) == full and r0 == [12, 14, 16, 18]
    with pytest.raises(ValueError, match="not divisible"):
        PositionSampler(0, 1, 5, 0, 2)


def test_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(tiny_data, tmp_path, caplog):
    cfg = config(tiny_data, tmp_path / "o", max_iter=4)
    train(cfg)
    latest = tmp_path / "o/checkpoints/ckpt_000000004.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    ckpt, problems = find_resumable(cfg)
    assert ckpt["iteration"] == 2
    assert len(problems) == 1 and "ckpt_000000004.pt" in problems[0] and "corrupt or truncated" in problems[0]
    with caplog.at_level("WARNING"):
        summary = train(config(tiny_data, tmp_path / "o", max_iter=6))
    assert summary["resumed_from"] == 2 and summary["iterations"] == 6
    assert "corrupt or truncated" in caplog.text
    assert steps(tmp_path / "o") == list(range(6))


def test_a_trainer_checkpoint_loads_for_inference(tiny_data, tmp_path):
    """`safin stylize --checkpoint .../checkpoints/ckpt_N.pt`: the checkpoint also holds numpy's RNG state, which a
    plain weights_only load refuses; the model's weights are those the run had at step N."""
    from safin.methods import load_weights, trained_state

    train(config(tiny_data, tmp_path / "o", max_iter=2))
    ckpt = torch.load(tmp_path / "o/checkpoints/ckpt_000000002.pt", weights_only=False)
    model = baselines.build("adain", encoder_weights="random")
    load_weights(model, tmp_path / "o/checkpoints/ckpt_000000002.pt")
    state = trained_state(model)
    assert state.keys() == ckpt["model"].keys() and all(torch.equal(state[k], ckpt["model"][k]) for k in state)


def test_the_structure_curve_measures_every_checkpoint_of_a_run(tiny_data, tmp_path):
    from evaluation.degenerate import output_measures
    from pipeline.structure_curve import run_curve
    from pipeline.stylize import build_model, load_sized

    train(config(tiny_data, tmp_path / "o", max_iter=4, keep_checkpoints=5))
    pairs = [(load_sized(c, 40), load_sized(s, 40)) for c, s in zip(sorted((tiny_data / "content").iterdir())[:2],
                                                                   sorted((tiny_data / "style").iterdir())[:2])]
    torch.manual_seed(0)  # the "random" encoder is drawn when a model is built: the same draw for the check below
    doc = run_curve(tmp_path / "o", pairs, rate=2.0)
    assert [p["iteration"] for p in doc["points"]] == [2, 4] and doc["method"] == "adain"
    assert [p["minutes"] for p in doc["points"]] == [round(2 * 2 / 2.0 / 60, 2), round(4 * 2 / 2.0 / 60, 2)]
    torch.manual_seed(0)
    model = build_model("adain", checkpoint=str(tmp_path / "o/checkpoints/ckpt_000000002.pt"), device="cpu",
                        precision="fp32", encoder_weights="random")
    with torch.no_grad():
        want = [output_measures(model(c, s)[0].clamp(0, 1), c[0])["edge_corr"] for c, s in pairs]
    assert doc["points"][0]["edge_corr"] == pytest.approx(sum(want) / 2, abs=1e-12)
    assert doc["points"][0]["edge_corr"] != doc["points"][1]["edge_corr"]  # each checkpoint its own model
    assert doc["reaches_target"] == (max(p["edge_corr"] for p in doc["points"]) >= 0.3)


def test_a_changed_configuration_is_not_resumed(tiny_data, tmp_path):
    train(config(tiny_data, tmp_path / "o", max_iter=2))
    ckpt, problems = find_resumable(config(tiny_data, tmp_path / "o", max_iter=4, lr=5e-4))
    assert ckpt is None and "different configuration" in problems[0]


def test_slurms_warning_signal_checkpoints_at_once(tiny_data, tmp_path):
    """SIGUSR1 (`sbatch --signal=USR1@…` sends it to the job's processes before the time limit): the run writes a
    checkpoint at the step it reached and stops, as on SIGTERM; the requeued task resumes from it."""
    import threading

    cfg = config(tiny_data, tmp_path / "o", max_iter=10_000, checkpoint_every=100_000)
    tsv = tmp_path / "o/live/plots/metrics/loss/total.tsv"

    def warn():
        deadline = time.time() + 120
        while (not tsv.exists() or len(tsv.read_text().splitlines()) < 3) and time.time() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=warn, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    ckpts = sorted((tmp_path / "o/checkpoints").glob("ckpt_*.pt"))
    assert len(ckpts) == 1 and 2 <= torch.load(ckpts[0], weights_only=False)["iteration"] < 10_000
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the handler is the trainer's only while it trains


@pytest.mark.slow  # a training process, interrupted
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tiny_data, tmp_path):
    params = {
        "data": {"out": str(tiny_data)},
        "train": {"methods": ["adain"], "out": str(tmp_path / "t"), "max_iter": 10_000, "batch_size": 2, "lr": 1e-4,
                  "lr_decay": 5e-5, "crop": 64, "seed": 1, "deterministic": True, "device": "cpu", "compile": False,
                  "num_workers": 0, "checkpoint_every": 100_000, "keep_checkpoints": 2, "encoder_weights": "random",
                  "method_overrides": {}},
    }
    import yaml
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    # output to files, not pipes: a child blocked on a full pipe while the test polls could not react
    log = tmp_path / "train.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "train", "--method", "adain", "--params",
                                 str(tmp_path / "params.yaml"), "--no-progress"], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, text=True,
                                # a shell's background job (`cmd &`, as CI may run us) inherits SIGINT
                                # *ignored*, and Python then installs no handler: restore the default, as
                                # for a foreground process that gets Ctrl-C
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    tsv = tmp_path / "t/adain/live/plots/metrics/loss/total.tsv"
    deadline = time.time() + 180
    while (not tsv.exists() or len(tsv.read_text().splitlines()) < 4) and time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("no exit within 180 s of SIGINT; its output:\n" + log.read_text()[-3000:])
    err = log.read_text()
    assert proc.returncode == 130, err[-3000:]
    assert "checkpoint is saved" in err
    assert list((tmp_path / "t/adain/checkpoints").glob("ckpt_*.pt"))


@pytest.mark.slow
def test_ddp_with_two_gloo_processes_matches_single_process(tiny_data, tmp_path):
    import dataclasses

    # a small lr keeps the random-encoder dynamics tame, so float reduction order cannot amplify
    # float32: bf16 rounding differs between a batch of 4 and two batches of 2, beyond this tolerance
    kw = dict(max_iter=4, batch_size=4, checkpoint_every=100, lr=1e-5, precision="fp32")
    single = config(tiny_data, tmp_path / "single", **kw)
    train(single)
    ddp = config(tiny_data, tmp_path / "ddp", **kw)
    script = tmp_path / "run.py"
    script.write_text(RUNNER.replace("sys.argv[1]", "open(sys.argv[1]).read()"))
    (tmp_path / "cfg.json").write_text(json.dumps(dataclasses.asdict(ddp)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path / "cfg.json")], cwd=REPO, capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["world_size"] == 2
    for name in ("total", "content", "style"):
        a, b = losses(tmp_path / "single", name), losses(tmp_path / "ddp", name)
        assert len(a) == len(b) == 4
        assert torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-4), (name, a, b)
        assert a[0] != a[-1]  # training moved: the later iterations compare updated weights


def test_num_workers_auto_uses_spare_cores_and_bad_values_are_refused(monkeypatch):
    from safin.training import resolve_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert resolve_workers("auto") == 8
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert resolve_workers("auto") == 1 and resolve_workers(3) == 3 and resolve_workers(0) == 0
    for bad in (-1, 1.5, "many", True):
        with pytest.raises(ValueError, match="num_workers"):
            resolve_workers(bad)


def test_losses_are_logged_every_iteration_without_dvclives_quadratic_next_step(tiny_data, tmp_path, monkeypatch):
    # Live.next_step re-reads every logged row on each call (quadratic over 160k iterations): the trainer
    # appends rows with an explicit step instead and writes the summary at checkpoints and at the end.
    import dvclive

    def forbidden(self):
        raise AssertionError("Live.next_step called")

    monkeypatch.setattr(dvclive.Live, "next_step", forbidden)
    out = tmp_path / "run"
    summary = train(config(tiny_data, out, max_iter=5, checkpoint_every=2))
    assert steps(out) == list(range(5))
    with open(out / "live/plots/metrics/lr.tsv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f, delimiter="\t")] == list(range(5))
    logged = {k: losses(out, k)[-1] for k in summary["final_losses"]}
    assert logged == pytest.approx(summary["final_losses"], rel=1e-6)  # the last (lagged) row is flushed
    assert json.loads((out / "live/metrics.json").read_text())["step"] == 5


def test_live_false_trains_without_dvclive_files(tiny_data, tmp_path):
    out = tmp_path / "run"
    summary = train(config(tiny_data, out, max_iter=3, live=False))
    assert summary["iterations"] == 3 and (out / "weights.pt").exists()
    assert not (out / "live").exists()


def _train_params(tmp_path, data, **train) -> Path:
    import yaml

    params = {"data": {"out": str(data)},
              "train": {"methods": ["adain"], "out": str(tmp_path / "t"), "max_iter": 4, "batch_size": 4, "lr": 1e-5,
                        "lr_decay": 5e-5, "crop": 32, "seed": 1, "deterministic": True, "device": "cpu",
                        "compile": False, "num_workers": 0, "checkpoint_every": 100, "keep_checkpoints": 2,
                        "encoder_weights": "random", "precision": "fp32", "method_overrides": {}, **train}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.slow  # three training processes
def test_one_run_over_two_nodes_by_c10d_rendezvous_trains_as_one_process_with_the_global_batch(tiny_data, tmp_path):
    """The training array's own launch line for a run over two nodes (``srun torchrun --nnodes … --rdzv_backend=c10d``,
    pipeline/cluster.py), run as two "nodes" on this machine: two torchrun agents, one gloo process each, meeting at
    the rendezvous on 127.0.0.1. The same trajectory as one process with the same global batch (the tolerance of the
    DDP test above)."""
    import socket

    from pipeline.cluster import ClusterConfig, array_script

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = {"train": {"methods": ["adain"], "seed": 1}, "pretrained": {"methods": []}}
    script = array_script(params, ClusterConfig.from_params({"nodes_per_run": 2, "gpus_per_node": 0,
                                                              "rdzv_port": port}), tmp_path)
    launch = next(line for line in script.splitlines() if "torchrun" in line).removesuffix(" &")
    assert launch.startswith("srun --kill-on-bad-exit=1 torchrun --nnodes=\"$SLURM_NNODES\" --nproc_per_node=1 ")
    node_cmd = launch.removeprefix("srun --kill-on-bad-exit=1 ")   # what srun starts on each node
    params_file = _train_params(tmp_path, tiny_data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_NNODES": "2", "HEAD": "127.0.0.1", "SLURM_JOB_ID": "4242",
           "METHOD": "adain", "SEED": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    logs = [open(tmp_path / f"node{i}.log", "w") for i in range(2)]
    nodes = [subprocess.Popen(["bash", "-c", node_cmd], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
             for log in logs]
    try:
        codes = [p.wait(timeout=600) for p in nodes]
    finally:
        for p in nodes:
            p.kill()
        for log in logs:
            log.close()
    out = "\n".join((tmp_path / f"node{i}.log").read_text()[-2000:] for i in range(2))
    assert codes == [0, 0], out
    two_nodes = tmp_path / "t/adain"
    assert json.loads((two_nodes / "summary.json").read_text())["world_size"] == 2, out
    single = tmp_path / "single"
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--method", "adain", "--params",
                          str(params_file), "--out-dir", str(single), "--no-progress"], cwd=REPO,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((single / "summary.json").read_text())["world_size"] == 1
    for name in ("total", "content", "style"):
        a, b = losses(single, name), losses(two_nodes, name)
        assert len(a) == len(b) == 4
        assert torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-4), (name, a, b)
        assert a[0] != a[-1]
