"""Instruction-set settings: what this CPU can emulate, and that a setting reaches PyTorch's kernels."""
import subprocess
import sys

import pytest

from safin.runtime import cpu_isa

from .conftest import REPO


def test_settings_and_emulatable():
    assert list(cpu_isa.SETTINGS) == ["default", "avx2", "avx512"]
    em = cpu_isa.emulatable()
    assert em[0] == "default" and em[-1] == cpu_isa.hardware_isa()
    env = cpu_isa.env_for("avx2", base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    with pytest.raises(ValueError, match="unknown instruction-set setting 'sse9'"):
        cpu_isa.env_for("sse9")


def test_describe_names_model_isa_and_bf16():
    line = cpu_isa.describe()
    assert cpu_isa.cpu_model() in line and ("AVX" in line or "SSE4" in line) and "bf16" in line


@pytest.mark.parametrize("setting", cpu_isa.emulatable())
def test_a_setting_caps_the_kernels_of_a_new_process(setting):
    code = "from safin.runtime import cpu_isa; print(cpu_isa.active_isa()); print(cpu_isa.describe())"
    out = subprocess.run([sys.executable, "-c", code], env=cpu_isa.env_for(setting), cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == setting
    if setting != cpu_isa.hardware_isa():
        assert "emulated on" in out[1] and out[1].endswith("no bf16")  # no native bf16 below AVX-512


@pytest.mark.slow  # a process per instruction set
def test_portable_init_gives_the_same_weights_under_every_setting():
    code = ("import hashlib, torch, baselines\n"
            "from safin.runtime.cpu_isa import portable_init\n"
            "original = torch.Tensor.uniform_\n"
            "torch.manual_seed(777)\n"
            "with portable_init():\n"
            "    m = baselines.build('sanet', encoder_weights='random')\n"
            "h = hashlib.sha256()\n"
            "for k, v in sorted(m.state_dict().items()): h.update(v.numpy().tobytes())\n"
            "print(h.hexdigest(), torch.Tensor.uniform_ is original)")
    outs = {s: subprocess.run([sys.executable, "-c", code], env=cpu_isa.env_for(s), cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.split() for s in cpu_isa.emulatable()}
    assert len({o[0] for o in outs.values()}) == 1, outs
    assert all(o[1] == "True" for o in outs.values())  # uniform_ restored afterwards


def test_portable_init_is_the_same_distribution_and_restores_uniform():
    import torch

    original = torch.Tensor.uniform_
    torch.manual_seed(0)
    ref = torch.empty(10000).uniform_(-0.5, 0.25)
    torch.manual_seed(0)
    with cpu_isa.portable_init():
        assert torch.Tensor.uniform_ is not original
        ours = torch.empty(10000).uniform_(-0.5, 0.25)
        unit = torch.empty(4).uniform_()
    assert torch.Tensor.uniform_ is original
    assert (ours - ref).abs().max() <= 1e-7 and ours.min() >= -0.5 and ours.max() < 0.25  # same draws, <= 1 ulp
    assert unit.min() >= 0 and unit.max() < 1
