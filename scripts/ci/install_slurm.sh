#!/usr/bin/env bash
# Install the Debian/Ubuntu packages that tests/slurm_cluster.py needs to start a
# throwaway single-node SLURM on localhost (pytest marker `slurm`):
# slurmctld, slurmd, slurm-client (sbatch/squeue/srun/...), munge; their
# Depends bring slurm-wlm-basic-plugins (auth/munge, select/cons_tres, ...).
# Idempotent: does nothing (no apt-get update) when all are installed.
# Needs root.  Configures nothing: the tests write their own slurm.conf and
# munge key in a temporary directory.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_slurm.sh: already installed: ${PACKAGES[*]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_slurm.sh: need root to install: ${missing[*]}" >&2
    exit 1
fi

echo "install_slurm.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
