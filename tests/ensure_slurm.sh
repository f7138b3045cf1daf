#!/usr/bin/env bash
# The real-SLURM test (tests/e2e/test_slurm_cluster.py) starts a one-node cluster on this machine: it needs
# Debian's slurm-wlm (slurmctld, slurmd, the client commands) and munge. Found, or installed when this user can
# (tests/apt_install.sh); on failure one line on stderr saying what to install, and exit 1. `make test` runs it.
set -euo pipefail
SBIN=/usr/sbin:/sbin:/usr/local/sbin
found() { local p; for prog in sbatch squeue scontrol scancel sinfo slurmctld slurmd munged mungekey; do
            p=$(PATH="$PATH:$SBIN" command -v "$prog" 2>/dev/null) && [ -x "$p" ] || return 1; done; }
found && exit 0
source "${0%/*}/apt_install.sh"
apt_install "the real-SLURM test needs SLURM and munge" "run the other tests alone: .venv/bin/python -m pytest -m 'not slurm'" \
  slurm-wlm munge || exit 1
found && exit 0
echo "make test: slurm-wlm and munge were installed but slurmctld, slurmd or munged is missing; install them by hand" >&2
exit 1
