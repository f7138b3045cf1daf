"""Shared fixtures: a Range-capable HTTP server on 127.0.0.1, image makers, the real asset cache."""
from __future__ import annotations

import os

# OpenMP threads that wait for work sleep instead of spinning. The end-to-end pipelines run beside the unit tests
# (tests/e2e/conftest.py), so two or three PyTorch processes share the two cores; with libgomp's default spinning
# two concurrent `safin evaluate` runs took 192 s, with PASSIVE 80 s (one alone: 41 s either way; Xeon, 2 cores).
# It changes no result. Set before anything loads PyTorch's OpenMP runtime; every subprocess inherits it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One intra-op thread per process: under `make test` one pytest-xdist worker per core and the pipelines in the
# background already keep every core busy, and a second thread in each of four to six PyTorch processes cost more
# than it gave: on 2 cores (AMD EPYC Zen 5) the suite took 1250 s of CPU and 747 s with PyTorch's default (a thread
# per core), 895 s of CPU and 557 s with one (docs/performance.md, "The test suite"). The ci pipeline, the critical
# path, gets the machine's cores back (tests/e2e/conftest.py). A value the caller set is kept.
ONE_THREAD = "OMP_NUM_THREADS" not in os.environ
if ONE_THREAD:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
import sys

# Byte-code for this repository's modules. With PYTHONDONTWRITEBYTECODE=1 (set on our CI machines) every process the
# tests start (each `dvc repro` stage in the pipelines' copies of this repository, every CLI run in a subprocess)
# compiled this repository's modules from source again: about 0.5 s of CPU a process (`import pipeline.train`: 1.83 s
# from source, 1.32 s from byte-code; AMD EPYC Zen 5). They write it next to the sources (`__pycache__/`, ignored by
# git), as Python does by default; the installed packages were byte-compiled by pip.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    sys.dont_write_bytecode = False
# No DVC usage analytics from the tests' `dvc` commands: each started a daemon process that tries to reach DVC's
# server (none here), 11 of them a session, about 5 s of CPU in all
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
import contextlib
import io
import logging
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class FileServer:
    """Serves ``files`` (name -> bytes) with HTTP Range support.

    ``drop_after[name] = n`` makes the *first* response for that file close the connection after n
    bytes (a dropped download); ``ignore_range`` answers 200 with the whole file. Every request's
    Range header is recorded in ``requests``.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.redirects: dict[str, str] = {}  # name -> absolute URL answered with 302
        self.bare_416 = False  # answer 416 without Content-Range (a server that gives no length)
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name in server.redirects:  # as a download host hands over to its storage node
                    self.send_response(302)
                    self.send_header("Location", server.redirects[name])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if name not in server.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files[name]
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)  # as GitHub's and Dropbox's hosts answer: the full length
                        if not server.bare_416:
                            self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                drop = server.drop_after.pop(name, None)
                if drop is not None:
                    self.wfile.write(body[:drop])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def http_server():
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(scope="session")
def real_cache() -> Path:
    """The user's asset cache (``$SAFIN_CACHE`` or ``~/.cache/safin``): real weights, fetched once."""
    from safin.io.weights import cache_dir

    return cache_dir()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return REPO / "data" / "sample"


#: the session fixtures of the expensive runs (tests/e2e/conftest.py), and the modules of the tests that need them
RUN_FIXTURES = {"ci_run", "pretrained_run", "slurm_run"}
RUN_MODULES = ("tests/e2e/test_dvc_pipeline.py", "tests/e2e/test_pretrained_profile.py",
               "tests/e2e/test_slurm_cluster.py")


def pytest_collection_modifyitems(config, items):
    """In one process, the tests that need a pipeline run go last: the runs go on in the background meanwhile
    (tests/e2e/conftest.py). Under pytest-xdist (``make test``) they go first, as one unit of work (see
    :func:`pytest_xdist_make_scheduler`)."""
    xdist = hasattr(config, "workerinput")
    items.sort(key=lambda item: bool(RUN_FIXTURES & set(getattr(item, "fixturenames", ()))) != xdist)


#: how much lower the priority of everything else in a session is than the ci pipeline's (its tests come last)
YIELD_TO_CI = 5
#: whether this process runs the pipelines (tests/e2e/conftest.py: start_runs)
RUNS_HERE: dict = {"yes": False, "yielded": False}


def ci_started_marker(config) -> Path | None:
    """Under pytest-xdist, the file the worker running the ci pipeline writes once it has started it: the other
    workers then run at :data:`YIELD_TO_CI` (see :func:`pytest_runtest_setup`). Measured on 2 cores (AMD EPYC Zen 5):
    with the unit tests' worker beside it at the same priority the ci pipeline took 430 s, and was the suite's end."""
    run = getattr(config, "workerinput", {}).get("testrunuid")
    return Path(tempfile.gettempdir()) / f"safin-tests-{run}-ci-started" if run else None


def pytest_runtest_setup(item):
    if RUNS_HERE["yes"] or RUNS_HERE["yielded"]:
        return
    marker = ci_started_marker(item.config)
    if marker is not None and marker.exists():
        RUNS_HERE["yielded"] = True
        os.nice(YIELD_TO_CI)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs one pytest-xdist worker per core. The tests of :data:`RUN_MODULES` are one unit of work,
    handed out first: the worker that takes it starts the runs in the background and waits for them while the other
    workers run the unit tests; once its unit is done it takes unit tests too. Every other test is a unit of its own.
    (What ``--dist loadgroup`` would do with an ``xdist_group`` mark, which pytest-xdist 3.8 under pytest 9 does not
    apply: every marked test went to any worker, and the runs started in both.)"""
    from xdist.scheduler import LoadScopeScheduling

    class PipelinesFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "pipelines" if nodeid.split("::")[0] in RUN_MODULES else nodeid

    return PipelinesFirst(config, log)


def safin(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``safin ARGS`` run in this process (``pipeline.cli.main``), as the console script runs it: ``env`` added to
    the environment and ``cwd`` the working directory for the call; stdout, stderr and the log lines captured;
    argparse's exit is the return code. A fresh interpreter per command cost about 2 s of imports each
    (``tests/test_cli.py::test_console_script_is_installed`` runs the real console script)."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level, saved_env, saved_cwd = root.level, dict(os.environ), os.getcwd()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.environ.update(env or {})
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse: --help, a bad flag
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        root.removeHandler(handler)
        root.setLevel(level)
    return subprocess.CompletedProcess(["safin", *args], code, out.getvalue(), err.getvalue())
