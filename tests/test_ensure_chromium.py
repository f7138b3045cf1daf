"""tests/ensure_chromium.sh: `make test` finds Chromium, installs it, or says in one line what to install."""
import os
import subprocess

from .conftest import REPO

SCRIPT = REPO / "tests" / "ensure_chromium.sh"


def _tool(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _run(path_dir, **env):
    return subprocess.run(["/bin/bash", str(SCRIPT)], env={"PATH": str(path_dir), **env}, capture_output=True, text=True)


def test_a_named_or_found_chromium_is_printed(tmp_path):
    exe = _tool(tmp_path, "my-chrome", "exit 0")
    res = _run(tmp_path, CHROMIUM=str(exe))
    assert res.returncode == 0 and res.stdout.strip() == str(exe)
    found = _tool(tmp_path, "chromium", "exit 0")
    res = _run(tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == str(found)


def test_without_root_or_sudo_it_stops_with_one_line(tmp_path):
    _tool(tmp_path, "id", "echo 1000")
    _tool(tmp_path, "apt-get", "echo should-not-run >&2; exit 3")
    res = _run(tmp_path)
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install chromium" in lines[0] and "CHROMIUM=" in lines[0]


def test_without_apt_get_it_stops_with_one_line(tmp_path):
    res = _run(tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "no apt-get" in lines[0]


def test_a_failing_install_is_one_line_with_the_log(tmp_path):
    _tool(tmp_path, "id", "echo 0")
    _tool(tmp_path, "apt-get", "echo 'E: Unable to locate package chromium' >&2; exit 100")
    _tool(tmp_path, "rm", "exit 0")
    res = _run(tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and lines[0].startswith("make test: installing") and len(lines) == 2
    assert "could not install chromium" in lines[1] and "log:" in lines[1]
    log = lines[1].split("log: ")[1].split(")")[0]
    assert "Unable to locate package" in open(log).read()
    os.unlink(log)


def test_make_test_uses_it():
    assert "tests/ensure_chromium.sh" in (REPO / "Makefile").read_text()
    assert "apt-get" not in (REPO / ".ci" / "run").read_text()  # .ci/run just calls make test
