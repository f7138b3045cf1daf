import subprocess
import sys

CHECK = ("from safin.runtime.cpu_memory import keep_freed_memory, allocator; "
         "print(keep_freed_memory(), allocator())")


def _run(env_extra: dict) -> str:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_keep_freed_memory_is_accepted_by_glibc_and_recorded():
    out = _run({"SAFIN_MALLOC": ""})
    assert out == "True glibc, freed memory kept (safin.runtime.cpu_memory)"


def test_safin_malloc_default_leaves_the_allocator_alone():
    assert _run({"SAFIN_MALLOC": "default"}) == "False C library default"


def test_only_inference_commands_keep_freed_memory():
    from pipeline.cli import KEEP_FREED_MEMORY, build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert KEEP_FREED_MEMORY <= commands
    assert "train" not in KEEP_FREED_MEMORY
