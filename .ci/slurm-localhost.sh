#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on localhost (munged, slurmctld, slurmd), for CI and for
# trying profiles/slurm on a workstation. Needs root and Debian's slurm-wlm + munge:
#   apt-get install -y slurm-wlm munge && sudo bash .ci/slurm-localhost.sh
# No slurmdbd: run Snakemake with `--slurm-status-command squeue --slurm-no-account`
# (tests/test_slurm.py does), because the plugin's default `sacct` polling needs accounting.
set -euo pipefail

command -v slurmctld >/dev/null || { echo "slurmctld not found: apt-get install slurm-wlm munge" >&2; exit 1; }

# The node's real CPUs and memory, so slurmd registers without complaint; leave 1 GiB to the OS.
read -r cpus mem < <(slurmd -C | awk -F'[ =]' '/^NodeName/ {
    for (i = 1; i <= NF; i++) { if ($i == "CPUs") c = $(i+1); if ($i == "RealMemory") m = $(i+1) }
    print c, m }')
mem=$((mem > 2048 ? mem - 1024 : mem))

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=siaflow-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

# munge: a key (Debian's package makes one; make one if missing), then the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

pgrep -x slurmctld >/dev/null || (setsid slurmctld -D >/var/log/slurm/slurmctld.out 2>&1 &)
pgrep -x slurmd >/dev/null || (setsid slurmd -D -N localhost >/var/log/slurm/slurmd.out 2>&1 &)

# Wait until the node takes jobs.
for _ in $(seq 60); do
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        sinfo -N -l
        exit 0
    fi
    sleep 1
done
echo "SLURM did not come up; logs:" >&2
tail -n 30 /var/log/slurm/*.log /var/log/slurm/*.out >&2 || true
exit 1
