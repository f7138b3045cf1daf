"""A one-node SLURM cluster on this machine, for the real-SLURM test (tests/e2e/test_slurm_cluster.py).

Debian's ``slurm-wlm`` and ``munge`` (``tests/ensure_slurm.sh`` installs them for ``make test``), run as the current
user: its own munge key and socket, ``slurmctld`` and ``slurmd`` in the foreground on free ports, state, spool,
logs and ``slurm.conf`` in one folder. ``SLURM_CONF`` (in :meth:`LocalSlurm.env`) points the client commands
(``sbatch``, ``squeue``, ``scontrol``, ``scancel``) at it; jobs inherit it. :meth:`stop` ends every daemon and
job and removes the folder, whatever happened.

Settings that differ from a site's on purpose: ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``
(no cgroups in a container), ``cred_expire=10`` (a requeued job waits ``cred_expire`` seconds before it may start
again: 120 by default, measured 169 s per requeue here), ``sched_interval=1`` (the scheduler's pass over pending
jobs: 60 s by default, which a requeued task otherwise waits for), no accounting.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


def find(name: str) -> str | None:
    """A SLURM or munge program on PATH or in the sbin folders (not on a normal user's PATH)."""
    return shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def missing() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if find(name) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    def __init__(self, root: Path, cpus: int | None = None):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.node = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen] = []

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), *SBIN])
        return env

    def _daemon(self, *cmd: str) -> None:
        log = open(self.root / "log" / f"{Path(cmd[0]).name}.out", "w")
        self.procs.append(subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                           start_new_session=True))
        log.close()

    def start(self, timeout: float = 60) -> LocalSlurm:
        r = self.root
        for sub in ("state", "spool", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        key, sock = r / "munge.key", r / "munge.sock"
        subprocess.run([find("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        self._daemon(find("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                     f"--log-file={r}/log/munged.log", f"--pid-file={r}/munged.pid", f"--seed-file={r}/munged.seed")
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        self.conf.write_text("\n".join([
            "ClusterName=safintest", f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}", f"SlurmUser={user}", f"SlurmdUser={user}",
            "AuthType=auth/munge", f"AuthInfo=socket={sock},cred_expire=10", "CredType=cred/munge",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SchedulerType=sched/builtin", "SchedulerParameters=sched_interval=1",
            "JobCompType=jobcomp/none", "AccountingStorageType=accounting_storage/none", "MpiDefault=none",
            "ReturnToService=2", "JobRequeue=1", "KillWait=10", "MinJobAge=600",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            f"PartitionName=local Nodes={self.node} Default=YES MaxTime=INFINITE State=UP", ""]))
        deadline = time.time() + timeout
        while not sock.exists():
            self._check(deadline, "munged")
        self._daemon(find("slurmctld"), "-D", "-i", "-f", str(self.conf))
        self._daemon(find("slurmd"), "-D", "-N", self.node, "-f", str(self.conf))
        while "idle" not in self.run("sinfo", "-h", "-o", "%T", check=False).stdout:
            self._check(deadline, "the node to come up")
        return self

    def _check(self, deadline: float, what: str) -> None:
        dead = [p.args[0] for p in self.procs if p.poll() is not None]
        if dead or time.time() > deadline:
            raise RuntimeError(f"local SLURM: {'exited: ' + ', '.join(dead) if dead else 'timed out waiting for ' + what}"
                               f"\n{self.logs()}")
        time.sleep(0.2)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([find(cmd[0]) or cmd[0], *cmd[1:]], capture_output=True, text=True, env=self.env())
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
        return res

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields of one job or array task (``JobState``, ``ExitCode``, ``Restarts``…)."""
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(f.split("=", 1) for f in out.split() if "=" in f)

    def wait_idle(self, timeout: float) -> None:
        """Until no job is pending or running."""
        deadline = time.time() + timeout
        while self.run("squeue", "-h", "-o", "%i").stdout.strip():
            if time.time() > deadline:
                raise TimeoutError(f"jobs still queued after {timeout} s:\n{self.run('squeue').stdout}\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def stop(self, keep_logs: Path | None = None) -> None:
        """Every job cancelled, every daemon ended, the folder removed (its logs moved to ``keep_logs`` first)."""
        try:
            if self.conf.exists() and all(p.poll() is None for p in self.procs):
                user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
                self.run("scancel", "--full", "-u", user, check=False)
                self.wait_idle(timeout=30)   # the jobs' processes end before the daemons that started them
        except (RuntimeError, TimeoutError):
            pass
        finally:
            for p in reversed(self.procs):
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
            for p in self.procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            if keep_logs is not None and (self.root / "log").exists():
                shutil.copytree(self.root / "log", keep_logs, dirs_exist_ok=True)
            shutil.rmtree(self.root, ignore_errors=True)
