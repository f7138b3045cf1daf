"""The expensive runs of the end-to-end tests, each done once a session, in a throw-away copy of this
repository, as a user would run them:

- ``ci_run``: ``safin profile ci && dvc repro`` with a plugin method (``tests/plugins/colorstats``, pip-installed
  into a folder of its own on ``PYTHONPATH``, named in ``params.yaml``), then ``safin isa-check`` on the gated
  computation of one method under each older instruction set the CPU can emulate;
- ``pretrained_run``: ``safin profile pretrained && dvc repro`` against a server on 127.0.0.1 standing in for the
  authors' hosts;
- ``slurm_run``: ``safin cluster submit`` on a one-node SLURM cluster started for it (``tests/e2e/slurm_run.py``).

Each starts in a background thread as soon as the tests are collected (only when a selected test needs it), and
pytest runs the end-to-end tests last, so the unit tests run while the pipelines do: on two cores a ``dvc repro``
leaves most of one idle (process starts, DVC's own work). A test that needs a run waits for it; a run that failed
fails every test that needs it, with its output. Why: the suite ran the ``ci`` pipeline three times and the
pretrained one twice (21-26 min on two cores, issue 27); now each runs once, beside the rest.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import ONE_THREAD, REPO, RUNS_HERE, YIELD_TO_CI, FileServer, ci_started_marker

PLUGIN = "tests/plugins/colorstats"
#: how a ``params.yaml`` lists the methods (train and benchmark share the first; stylize; the study), and the
#: same lists with the plugin method added
TRAIN_LIST = "methods: [adain, wct, sanet, sanet_safin, safin, safin_fin]"
BENCH_LIST = "methods: [safin, adain]"
STYLIZE_LIST = "methods: [safin, safin_fin, sanet, sanet_safin, adain, wct]"
SURVEY_LIST = "methods: [safin, sanet, wct, adain]"
#: the method of the instruction-set check: SANet's unscaled attention is where float32 training moved most
#: between instruction sets (a 2.4 % move of a metric after four steps, profiles/ci.yaml), so it is the strictest
#: case of the gate's portability; the other methods' arithmetic is the same convolutions and statistics without
#: the attention. One setting: the newest one older than the run's own (AVX2 under AVX-512: the kernels of our AVX2
#: CI machine; SSE4 under AVX2), whose pipeline run is the other half of the comparison. `safin isa-check` alone
#: runs every setting and every method (all six and SSE4 as well cost 2.5 min of every test run).
ISA_METHOD = "sanet"


def isa_settings() -> list[str]:
    """The newest instruction-set setting older than the one this process runs (none on an SSE4-only CPU)."""
    from safin.runtime import cpu_isa

    order = list(cpu_isa.SETTINGS)
    return [s for s in cpu_isa.emulatable() if order.index(s) < order.index(cpu_isa.active_isa())][-1:]

_procs: set[subprocess.Popen] = set()
_lock = threading.Lock()


def sh(cmd, cwd, env, nice: int = 0) -> str:
    """Run ``cmd`` (a list, or a string for the shell) and return its output; fails the test with the tail of
    the output when it exits non-zero."""
    res = run(cmd, cwd, env, nice)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


def run(cmd, cwd, env, nice: int = 0) -> subprocess.CompletedProcess:
    """``subprocess.run`` whose process is ended if the session ends first (a failed or interrupted run)."""
    return finish(start(cmd, cwd, env, nice))


def start(cmd, cwd, env, nice: int = 0) -> subprocess.Popen:
    """Start ``cmd`` (its output into temporary files, so that nobody has to read it meanwhile); ``nice``: a
    lower CPU priority, for work that should yield to the run the tests wait for first."""
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd] if not isinstance(cmd, str) else f"nice -n {nice} {cmd}"
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    # a process group of its own (ended as one at the session's end), but not a session of its own: Linux puts
    # each session in its own scheduling group (autogroup), which would share the CPU equally between groups
    # whatever their nice values
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True, shell=isinstance(cmd, str),
                            process_group=0)
    proc.files = (out, err)
    with _lock:
        _procs.add(proc)
    return proc


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """Wait for a process of :func:`start`; its exit code and output."""
    try:
        proc.wait()
    finally:
        with _lock:
            _procs.discard(proc)
    texts = []
    for f in proc.files:
        f.seek(0)
        texts.append(f.read())
        f.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, *texts)


def stages_run(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


def dvc_status(repo, env) -> dict:
    """``dvc status`` without stage check_methods, which is always changed by design (it checks the
    installed methods; the stages of an unchanged method stay up to date)."""
    res = run(["dvc", "status", "--json"], repo, env)
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert "always changed" in status.get("check_methods", []), status
    return {k: v for k, v in status.items() if k != "check_methods"}


def copy_repo(dst: Path, env: dict) -> Path:
    """This checkout's tracked and untracked-but-not-ignored files in ``dst``, committed to a new git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    sh("git init -q && git add -A && git commit -qm copy", dst, env)
    return dst


def base_env(environ: dict, **extra) -> dict:
    return {**environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}", "CI": "true",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t", "TQDM_DISABLE": "1", **extra}


def _ci_run(tmp: Path, environ: dict, cache: Path) -> dict:
    """The ci profile with the plugin method, ``dvc repro``, then the instruction-set check."""
    site = tmp / "plugin-site"
    env = base_env(environ, SAFIN_OFFLINE="1", PYTHONPATH=str(site), SAFIN_CACHE=str(cache))
    one_thread = dict(env)
    if ONE_THREAD:  # the critical path: PyTorch's default threads (one per core), as a user's run; the rest one
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)
    repo = copy_repo(tmp / "repo", env)
    # the plugin as a user installs it: pip, from its own pyproject.toml (into a folder of its own, so the
    # venv the other tests run in never sees it)
    sh([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
        "--no-build-isolation", "--target", str(site), str(repo / PLUGIN)], repo, env)
    sh([sys.executable, "-m", "pipeline.cli", "profile", "ci"], repo, env)
    params = repo / "params.yaml"
    original = params.read_text()
    assert original.count(TRAIN_LIST) == 1 and original.count(STYLIZE_LIST) == 1  # train; stylize
    assert original.count(SURVEY_LIST) == 1 and original.count(BENCH_LIST) == 1
    params.write_text(original.replace(TRAIN_LIST, TRAIN_LIST[:-1] + ", colorstats]")
                      .replace(BENCH_LIST, BENCH_LIST[:-1] + ", colorstats]")
                      .replace(STYLIZE_LIST, STYLIZE_LIST[:-1] + ", colorstats]")
                      .replace(SURVEY_LIST, SURVEY_LIST[:-1] + ", colorstats]"))
    sh("git commit -qam 'the plugin method in every list'", repo, env)
    repro = start(["dvc", "repro"], repo, env)
    CI_PIPELINE_STARTED.set()
    # meanwhile, once the data is prepared, the gate's computation of one method under an older instruction set
    # (ISA_METHOD, isa_settings), at a lower priority: the tests wait for the pipeline first
    settings, isa = isa_settings(), None
    data_ready = repo / "outputs/data/style/report.json"
    while settings and repro.poll() is None and not data_ready.exists():
        time.sleep(0.5)
    if settings and data_ready.exists():
        isa = start([sys.executable, "-m", "pipeline.cli", "isa-check", "--settings", ",".join(settings), "--methods",
                     ISA_METHOD, "--pairs", "1", "--out", "isa_check.json"], repo, one_thread, nice=10)
    res = finish(repro)
    assert res.returncode == 0, f"dvc repro failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    out = res.stdout + res.stderr
    # nothing changed: nothing would re-run (before any test edits the copy): what `dvc repro` runs is what
    # `dvc status` lists, without running check_methods again
    again = dvc_status(repo, env)
    isa = finish(isa) if isa else None
    return {"repo": repo, "env": env, "out": out, "again": again, "without_plugin": original, "isa": isa,
            "isa_settings": settings}


#: makes every process of a run see the stand-in files of StyleID's set in place of the real ones' pins, and the
#: stand-in evidence of ``safin verify-release`` (inputs and "the authors' outputs" made by the restated reference
#: forward pass) in place of the real repositories': the pipeline's own code then fetches and checks them from the
#: stand-in server exactly as it would the real files
STANDIN_SET_HOOK = """\
import dataclasses, importlib.abc, importlib.util, sys

FILES = {files!r}
EVIDENCE = {evidence!r}
VGG19_URL = {vgg19_url!r}
PATCH = {{"safin.io.benchmark_sets", "pipeline.verify_release", "evaluation.cfsd", "evaluation.published"}}


def _patch(module):
    if module.__name__ == "safin.io.benchmark_sets":
        module.SETS["styleid"] = dataclasses.replace(module.SETS["styleid"], files=FILES)
    elif module.__name__ == "evaluation.cfsd":
        if VGG19_URL:  # a stand-in of torchvision's file, named as torchvision names it: by its own sha256
            module.VGG19_URL = VGG19_URL
    elif module.__name__ == "evaluation.published":
        tables = module.tables

        def stand_in_tables():  # the published numbers, for the stand-in set's number of pairs
            found = tables()
            for table in found.values():
                if table["set"] == "styleid":
                    table["n_pairs"] = len([f for f in FILES if "/cnt/" in f[0]]) * len([f for f in FILES if "/sty/" in f[0]])
            return found

        module.tables = stand_in_tables
    else:
        for method, ev in EVIDENCE.items():
            cases = tuple(module.Case(*c) for c in ev["cases"])
            module.EVIDENCE[method] = dataclasses.replace(module.EVIDENCE[method], files=ev["files"], cases=cases,
                                                          resize=ev["resize"])


class _StandIns(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in PATCH:
            return None
        PATCH.discard(name)
        sys.meta_path.remove(self)  # the real finders find it; this one stays only for what is left to patch
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if PATCH:
                sys.meta_path.insert(0, self)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _StandIns())
"""


def standin_vgg19(server: FileServer) -> str:
    """A stand-in of torchvision's VGG-19 file (``features`` only, random weights, float16: 40 MB) on ``server``, at
    the URL torchvision's would have if it were this file (``vgg19-<its sha256's first 8 digits>.pth``)."""
    import hashlib

    import torch
    from torchvision.models import vgg19

    from evaluation.cfsd import VGG19_URL

    from ..test_releases import mirror_name

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg19().state_dict().items()}
    g = torch.Generator().manual_seed(19)
    state = {k: (torch.randn(shape, generator=g) * (2 / shape[1:].numel()) ** 0.5 if len(shape) > 1
                 else torch.zeros(shape)).half() for k, shape in shapes.items() if k.startswith("features.")}
    # the classifier (unused by CFSD, 470 MB in the real file) as views of one stored zero: every tensor of the
    # network is there with its shape, and the file stays at the features' 40 MB
    zero = torch.zeros(1, dtype=torch.half)
    state.update({k: zero.expand(shape) if len(shape) > 1 else zero.expand(shape[0])
                  for k, shape in shapes.items() if k.startswith("classifier.")})
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    url = f"{VGG19_URL.rsplit('/', 1)[0]}/vgg19-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.files[mirror_name(url)] = data
    return url


#: the stand-in of StyleID's set: contents x styles (3 x 2 = 6 pairs; 4 x 3 = 12 pairs cost the pretrained run's
#: `evaluate` 46 s of CPU, most of it the art Inception at 512 px, StyleID's protocol)
STANDIN_CONTENTS, STANDIN_STYLES = 3, 2


def serve_styleid_set(server: FileServer, tmp: Path, n_content: int = STANDIN_CONTENTS, n_style: int = STANDIN_STYLES,
                      evidence: dict | None = None, vgg19_url: str | None = None) -> Path:
    """Stand-ins for StyleID's set on ``server`` at the set's canonical URLs (``data/cnt/NN.png``, ``data/sty/NN.png``:
    real sample photos, 96 × 80), and a folder holding the ``sitecustomize`` that swaps the set's pins for theirs
    (and ``evidence``'s for verify-release's: method -> {"files", "cases", "resize"}; StyleID's published table for
    one of as many pairs as the stand-in set; with ``vgg19_url``, torchvision's VGG-19 for :func:`standin_vgg19`'s)."""
    import hashlib

    from PIL import Image

    from safin.io.benchmark_sets import SETS

    from ..test_releases import mirror_name

    photos = sorted((REPO / "data" / "sample" / "content").glob("*.jpg"))
    files = []
    for folder, n, offset in (("data/cnt", n_content, 0), ("data/sty", n_style, n_content)):
        for i in range(n):
            with Image.open(photos[offset + i]) as im:
                buf = io.BytesIO()
                im.convert("RGB").resize((96, 80)).save(buf, "PNG")
            data = buf.getvalue()
            rel = f"{folder}/{i:02d}.png"
            server.files[mirror_name(SETS["styleid"].base_url + rel)] = data
            files.append((rel, hashlib.sha256(data).hexdigest(), len(data)))
    site = tmp / "standin-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STANDIN_SET_HOOK.format(files=tuple(files), evidence=evidence or {},
                                                                    vgg19_url=vgg19_url))
    return site


def _pretrained_run(tmp: Path, environ: dict, real_cache: Path) -> dict:
    """``safin profile styleid && dvc repro`` (the pretrained profile on StyleID's set, measured with StyleID's
    protocol) with every release, the set and the art Inception from a stand-in server, and again."""
    from evaluation.artfid import CKPT_URL
    from safin.io.weights import REGISTRY

    from ..test_artfid import write_art_inception_stand_in
    from ..test_releases import mirror_name, serve_release, serve_stytr2

    server = FileServer()
    server.thread.start()
    _servers.append(server)
    released = {method: serve_release(server, method, tmp, seed=10 + i) for i, method in enumerate(RELEASED)}
    # AdaAttN's and StyTR-2's READMEs link the same Drive file for vgg_normalised.pth: one file for both here too
    released["stytr2"]["vgg_normalised.pth"].write_bytes(released["adaattn"]["vgg_normalised.pth"].read_bytes())
    serve_stytr2(server, released["stytr2"])
    bethge = REGISTRY["vgg19_normalised"].sources[0]  # the first source of the encoder asset: bethgelab's
    server.files[mirror_name(bethge.url)] = (tmp / "src_adain" / "vgg_normalised.pth").read_bytes()
    server.files[mirror_name(CKPT_URL)] = write_art_inception_stand_in(tmp / "art_inception.pth").read_bytes()
    from ..test_verify_release import stand_in

    evidence = {}
    for m in ("sanet", "wct"):  # the outputs the authors committed, made by the restated reference on these files
        ev = stand_in(m, released[m], tmp / f"src_{m}", server, tmp)
        evidence[m] = {"files": ev.files, "cases": [(c.content, c.style, c.output) for c in ev.cases], "resize": ev.resize}
    site = serve_styleid_set(server, tmp, evidence=evidence, vgg19_url=standin_vgg19(server))
    cache = tmp / "cache"
    (cache / "weights").mkdir(parents=True)
    for name in ("vgg19", "alexnet"):  # the offline assets, as a user's cache holds them
        for suffix in (".pth", ".json"):
            shutil.copy(real_cache / "weights" / f"{name}{suffix}", cache / "weights" / f"{name}{suffix}")
    env = base_env(environ, SAFIN_CACHE=str(cache), SAFIN_URL_MIRROR=server.url("").rstrip("/"), PYTHONPATH=str(site))
    env.pop("SAFIN_OFFLINE", None)
    repo = copy_repo(tmp / "repo", env)
    sh([sys.executable, "-m", "pipeline.cli", "profile", "styleid"], repo, env)
    # the profile as it is, but small images and a short benchmark, so the test takes minutes on 2 cores
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["stylize"]["size"] = 64
    params["benchmark"].update(sizes=[64], runs=1, warmup=0, wct_size=0, methods=["adain"],
                               naive=False)  # the naive paths (a process each): tests/test_speed.py
    params["evaluate"]["bootstrap"] = 200
    params["stylize"]["precision"] = "fp32"  # the authors' precision: the test recomputes an output from their files
    # the power analysis at the study's own design only (its grid is tests/test_survey_models.py's subject)
    n_pairs = STANDIN_CONTENTS * STANDIN_STYLES
    params["survey"]["power"].update(participants=[25], sets=[n_pairs], simulations=50, bootstrap=100)
    params["survey"]["n_sets"] = n_pairs  # every pair of the stand-in set
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # below the ci run in priority (its tests come first), level with the unit tests: at nice 10 it waited for
    # the unit tests to end and was the session's last 37 s (AMD EPYC Zen 5, 2 cores)
    out = sh(["dvc", "repro"], repo, env, nice=YIELD_TO_CI)
    n = len(server.requests)
    again = dvc_status(repo, env)  # nothing would re-run: what a second `dvc repro` runs
    return {"repo": repo, "env": env, "out": out, "again": again, "server": server, "cache": cache,
            "requests_before_again": n, "released": released}


#: every method with a release, the paper's four and the two beyond it (issue 33)
RELEASED = ("adain", "wct", "sanet", "safin", "adaattn", "stytr2")
_servers: list[FileServer] = []
#: set once the ci pipeline's `dvc repro` runs (see :func:`pytest_collection_finish`)
CI_PIPELINE_STARTED = threading.Event()


class BackgroundRun:
    """One expensive run in a thread: started once, its result (or its exception) handed to every test."""

    def __init__(self, name: str, fn, nice: int = 0):
        """``nice``: added to the priority of the run's thread, so of every process it starts (on Linux a thread
        has a nice value of its own, and a child process inherits its thread's)."""
        self.name, self.fn, self.nice = name, fn, nice
        self.thread: threading.Thread | None = None
        self.value = self.error = None

    def start(self, tmp: Path, environ: dict, cache: Path) -> None:
        """``environ`` and ``cache``: the environment and asset cache as the session began. The unit tests that
        run meanwhile change ``os.environ`` (monkeypatch, the in-process CLI), so the thread never reads it."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, args=(tmp, environ, cache), name=self.name, daemon=True)
            self.thread.start()

    def _run(self, tmp: Path, environ: dict, cache: Path) -> None:
        try:
            if self.nice:
                os.nice(self.nice)
            self.value = self.fn(tmp, environ, cache)
        except BaseException as e:  # noqa: BLE001 - handed to the tests that need the run
            self.error = e

    def result(self, tmp):
        """The run's result, waiting for it; ``tmp()`` gives a folder if it has to start now (it was not
        started at collection)."""
        from safin.io.weights import cache_dir

        if self.thread is None:
            self.start(tmp(), dict(os.environ), cache_dir())
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def _slurm_run(tmp: Path, environ: dict, cache: Path) -> dict:
    from .slurm_run import slurm_run

    return slurm_run(tmp, environ, cache)


RUNS = {"ci_run": BackgroundRun("ci_run", _ci_run), "pretrained_run": BackgroundRun("pretrained_run", _pretrained_run),
        "slurm_run": BackgroundRun("slurm_run", _slurm_run, nice=YIELD_TO_CI)}  # mostly SLURM's waits


def _tmp(config, name: str) -> Path:
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's own (kept for inspection after a failure)
    return factory.mktemp(name) if factory else Path(tempfile.mkdtemp(prefix=f"{name}-"))


#: the runs the selected tests need, and whether they were started (see :func:`start_runs`)
_WANTED: dict = {"runs": set(), "config": None, "started": False}


def pytest_collection_finish(session):
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ()) if name in RUNS}
    _WANTED.update(runs=wanted, config=session.config)
    if not hasattr(session.config, "workerinput"):
        start_runs()
    # under pytest-xdist every worker collects every test: the runs start in the worker that takes the tests
    # needing them (one group, scheduled first: tests/conftest.py), at its first such test


def start_runs() -> None:
    """Start every run the selected tests need, once, each in its background thread."""
    if _WANTED["started"]:
        return
    _WANTED["started"] = True
    RUNS_HERE["yes"] = True
    wanted, config = _WANTED["runs"], _WANTED["config"]
    if wanted:
        # the assets both runs read, fetched (or verified, about 2 s) here once, so that no two processes fetch
        # the same asset into the cache at once
        from safin.io.weights import fetch

        for asset in ("vgg19", "vgg19_normalised_derived", "alexnet"):
            fetch(asset)
    from safin.io.weights import cache_dir

    environ, cache = dict(os.environ), cache_dir()
    for name in sorted(wanted):
        RUNS[name].start(_tmp(config, name), environ, cache)
    while "ci_run" in wanted and RUNS["ci_run"].thread.is_alive() and not CI_PIPELINE_STARTED.wait(0.2):
        pass  # the copy and the plugin's install: seconds
    if CI_PIPELINE_STARTED.is_set() and not hasattr(config, "workerinput"):
        # The tests that need the ci run come last, so its pipeline is the session's critical path: from now on
        # this process and whatever it starts (the unit tests, the pretrained run, the instruction-set check) run
        # at a lower priority than it. Measured on the Xeon as AVX2: the suite waited 59 s for the ci run at its
        # end without this. (Under xdist the other workers yield instead, once they see the marker: this worker
        # runs the tests that wait for the pipeline, which are the critical path.)
        os.nice(YIELD_TO_CI)
    marker = ci_started_marker(config)
    if CI_PIPELINE_STARTED.is_set() and marker is not None:
        marker.touch()


def pytest_sessionfinish(session):
    marker = ci_started_marker(session.config)
    if RUNS_HERE["yes"] and marker is not None:
        marker.unlink(missing_ok=True)
    with _lock:
        for proc in list(_procs):  # a run still going when the session ends (a failure with -x, Ctrl-C)
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
    for server in _servers:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture(scope="session")
def ci_run(request):
    start_runs()
    return RUNS["ci_run"].result(lambda: _tmp(request.config, "ci_run"))


@pytest.fixture(scope="session")
def pretrained_run(request):
    start_runs()
    return RUNS["pretrained_run"].result(lambda: _tmp(request.config, "pretrained_run"))


@pytest.fixture(scope="session")
def slurm_run(request):
    start_runs()
    return RUNS["slurm_run"].result(lambda: _tmp(request.config, "slurm_run"))
