"""Training never loses work: the fingerprint covers only a method's training code, a mismatch stops
with a choice, pruning never deletes the current run's checkpoints, SIGKILL anywhere resumes to the
same trajectory, a full disk keeps the previous checkpoint, a NaN loss stops the run."""
import errno
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

import baselines
from baselines.adain import AdaIN
from safin.methods import METHODS, register
from safin.training import TrainConfig, train
from safin.training import checkpoints as ck
from safin.training.code import _module_digest, training_modules
from safin.training.trainer import TrainingDiverged

from .test_training import config, losses, spawn, steps, tiny_data  # noqa: F401  (fixture)

METHOD_MODULES = {name: METHODS[name].__module__ for name in baselines.METHOD_NAMES}


@pytest.mark.parametrize("name", baselines.METHOD_NAMES)
def test_the_training_code_of_a_method_excludes_what_cannot_change_its_arithmetic(name):
    mods = training_modules(METHOD_MODULES[name])
    assert METHOD_MODULES[name] in mods and "safin.training.trainer" in mods and "safin.blocks.losses" in mods
    for unrelated in ("safin.io.download", "safin.io.weights", "safin.io.datasets", "survey.tally", "pipeline.cli",
                      "evaluation.metrics"):
        assert unrelated not in mods
    others = {m for n, m in METHOD_MODULES.items() if m != METHOD_MODULES[name]}
    if name != "sanet_safin":  # SAFIN in SANet is built on SANet's base network, which SANet shares
        assert not others & set(mods), others & set(mods)


def test_docstrings_comments_and_layout_do_not_change_a_module_digest_code_does(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Doc."""\ndef f(x):\n    """What f does."""\n    return x + 1\n')
    b.write_text('"""Other words."""\n\n# a comment\ndef f(x):\n    return (x\n            + 1)  # why\n')
    c.write_text('"""Doc."""\ndef f(x):\n    """What f does."""\n    return x + 2\n')
    assert _module_digest(a, 0) == _module_digest(b, 0) != _module_digest(c, 0)


def _fake_code_change(monkeypatch, module="safin.models.modules"):
    real = TrainConfig.code
    monkeypatch.setattr(TrainConfig, "code", lambda self: {**real(self), module: "0" * 64})


def test_changed_code_stops_with_the_choice_and_loses_nothing(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(config(tiny_data, out, max_iter=4))
    before = sorted(p.name for p in (out / "checkpoints").glob("ckpt_*.pt"))
    _fake_code_change(monkeypatch, "baselines.adain")
    with pytest.raises(ck.CheckpointMismatch) as e:
        train(config(tiny_data, out, max_iter=6))
    msg = str(e.value)
    assert "changed training code: baselines.adain" in msg and "--restart" in msg and "--resume-anyway" in msg
    assert sorted(p.name for p in (out / "checkpoints").glob("ckpt_*.pt")) == before  # nothing touched
    summary = train(config(tiny_data, out, max_iter=6, on_mismatch="resume"))
    assert summary["resumed_from"] == 4 and summary["iterations"] == 6
    assert summary["resumed_despite"] == ["changed training code: baselines.adain"]
    assert steps(out) == list(range(6))


def test_restart_sets_old_checkpoints_aside_and_prunes_only_its_own(tiny_data, tmp_path, monkeypatch):
    """The old failure: checkpoints of other code numbered above the new run's made pruning delete
    each new checkpoint as soon as it was written."""
    out = tmp_path / "run"
    train(config(tiny_data, out, max_iter=8, checkpoint_every=2))  # leaves ckpt 4, 6, 8
    _fake_code_change(monkeypatch)
    cfg = config(tiny_data, out, max_iter=4, checkpoint_every=2, on_mismatch="restart")
    summary = train(cfg)
    assert summary["resumed_from"] == 0 and summary["iterations"] == 4
    assert [p.name for p in ck.listed(cfg)] == ["ckpt_000000002.pt", "ckpt_000000004.pt"]
    kept = sorted(p.name for p in (out / "checkpoints/superseded").rglob("ckpt_*.pt"))
    assert kept == ["ckpt_000000004.pt", "ckpt_000000006.pt", "ckpt_000000008.pt"]


def test_an_unreadable_newer_checkpoint_is_set_aside_not_left_to_outrank_new_ones(tiny_data, tmp_path):
    out = tmp_path / "run"
    cfg = config(tiny_data, out, max_iter=4, checkpoint_every=2)
    train(cfg)
    ck.path_for(cfg, 100).write_bytes(b"not a checkpoint")
    train(config(tiny_data, out, max_iter=10, checkpoint_every=2))
    assert [p.name for p in ck.listed(cfg)] == ["ckpt_000000006.pt", "ckpt_000000008.pt", "ckpt_000000010.pt"]
    assert [p.name for p in (out / "checkpoints/rejected").rglob("*.pt")] == ["ckpt_000000100.pt"]


@pytest.mark.slow  # five training processes
def test_sigkill_at_random_points_and_inside_a_checkpoint_write_resumes_bit_identically(tiny_data, tmp_path):
    n = 18
    ref = config(tiny_data, tmp_path / "ref", max_iter=n, checkpoint_every=4, crop=64)
    train(ref)
    expected = losses(tmp_path / "ref")
    cfg = config(tiny_data, tmp_path / "run", max_iter=n, checkpoint_every=4, crop=64)
    tsv = tmp_path / "run/live/plots/metrics/loss/total.tsv"
    rng = random.Random(20261201)
    kills, in_write = [], 0
    plan = ["write", "step", "write"]  # 3 kills: one at a random step, two inside a checkpoint write
    for kind in plan:
        done = len(steps(tmp_path / "run")) if tsv.exists() else 0
        target = rng.randint(done + 1, min(n - 2, done + 6))  # a random step ahead of what is logged
        proc = spawn(cfg)
        deadline = time.time() + 120
        killed_during_write = False
        while proc.poll() is None and time.time() < deadline:
            if kind == "write":
                folder = tmp_path / "run/checkpoints"
                if folder.exists() and any(e.name.endswith(".tmp.pt") for e in os.scandir(folder)):
                    killed_during_write = True
                    break
            elif tsv.exists() and len(tsv.read_text().splitlines()) - 1 >= target:
                time.sleep(rng.uniform(0, 0.05))
                break
            time.sleep(0.001 if kind == "write" else 0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed: the test is void"
        in_write += killed_during_write
        kills.append((kind, target if kind == "step" else "checkpoint write"))
    assert in_write >= 1, kills
    assert not (tmp_path / "run/weights.pt").exists()
    final = spawn(cfg)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert steps(tmp_path / "run") == list(range(n))
    assert losses(tmp_path / "run") == expected, kills
    a = torch.load(tmp_path / "ref/weights.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "run/weights.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [p for p in (tmp_path / "run/checkpoints").iterdir() if p.name.endswith(".tmp.pt")]


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one_and_stops(tiny_data, tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def save(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == 2:  # the second checkpoint: a partial file, then the disk is full
            Path(f).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ck.torch, "save", save)
    cfg = config(tiny_data, tmp_path / "run", max_iter=6, checkpoint_every=2)
    with pytest.raises(ck.CheckpointWriteError) as e:
        train(cfg)
    assert "ckpt_000000004.pt: no space left on device" in str(e.value)
    assert "ckpt_000000002.pt is intact" in str(e.value)
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["ckpt_000000002.pt"]
    monkeypatch.setattr(ck.torch, "save", real_save)
    ckpt, problems = ck.find_resumable(cfg)
    assert ckpt["iteration"] == 2 and not problems
    assert train(cfg)["resumed_from"] == 2


@register
class _NaNAfterFive(AdaIN):
    """AdaIN whose loss becomes NaN (or ``bad``) at its sixth training step (iteration 5)."""
    name = "test_nan_after_five"
    bad = float("nan")

    def losses(self, content, style):
        out = super().losses(content, style)
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls > 5:
            out = {k: v * self.bad for k, v in out.items()}
        return out


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_non_finite_loss_stops_the_run_naming_the_iteration_and_the_last_good_checkpoint(tiny_data, tmp_path, bad,
                                                                                           monkeypatch):
    monkeypatch.setattr(_NaNAfterFive, "bad", float(bad))
    cfg = config(tiny_data, tmp_path / "run", method="test_nan_after_five", max_iter=10, checkpoint_every=4)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg)
    msg = str(e.value)
    assert "not finite at iteration 5" in msg and "ckpt_000000004.pt (iteration 4)" in msg
    assert [p.name for p in ck.listed(cfg)] == ["ckpt_000000004.pt"]  # nothing saved after it
    assert not (tmp_path / "run/weights.pt").exists()
