"""tests/ensure_slurm.sh: `make test` finds SLURM and munge, installs them, or says in one line what to install."""
import subprocess

from .conftest import REPO
from .test_ensure_chromium import _tool

SCRIPT = REPO / "tests" / "ensure_slurm.sh"
PROGRAMS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "slurmctld", "slurmd", "munged", "mungekey")


def _run(path_dir):
    return subprocess.run(["/bin/bash", str(SCRIPT)], env={"PATH": str(path_dir)}, capture_output=True, text=True)


def test_found_programs_need_nothing(tmp_path):
    for name in PROGRAMS:
        _tool(tmp_path, name, "exit 0")
    _tool(tmp_path, "apt-get", "echo should-not-run >&2; exit 3")
    res = _run(tmp_path)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""


def test_one_missing_program_without_root_stops_with_one_line(tmp_path):
    for name in PROGRAMS[1:]:   # sbatch absent (a client: never in the sbin folders the script also searches)
        _tool(tmp_path, name, "exit 0")
    _tool(tmp_path, "id", "echo 1000")
    _tool(tmp_path, "apt-get", "echo should-not-run >&2; exit 3")
    res = _run(tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "apt-get install slurm-wlm munge" in lines[0] and "-m 'not slurm'" in lines[0]


def test_a_failing_install_is_one_line_with_the_log(tmp_path):
    _tool(tmp_path, "id", "echo 0")
    _tool(tmp_path, "apt-get", "echo 'E: Unable to locate package slurm-wlm' >&2; exit 100")
    res = _run(tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and lines[0].startswith("make test: installing") and len(lines) == 2, res.stderr
    assert "could not install slurm-wlm munge" in lines[1] and "log:" in lines[1]
    log = lines[1].split("log: ")[1].split(")")[0]
    assert "Unable to locate package" in open(log).read()


def test_an_install_that_leaves_a_daemon_missing_says_so(tmp_path):
    _tool(tmp_path, "id", "echo 0")
    _tool(tmp_path, "apt-get", "exit 0")
    _tool(tmp_path, "rm", "exit 0")
    res = _run(tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 2 and "installed but" in lines[1], res.stderr


def test_make_test_runs_it_before_pytest():
    make = (REPO / "Makefile").read_text()
    assert make.index("bash tests/ensure_slurm.sh") < make.index("-m pytest -n auto")
