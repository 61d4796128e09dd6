#!/usr/bin/env bash
# A real single-node Slurm on this machine for SweepTests, so that `sqair sweep --slurm` meets a real
# sbatch rather than a stand-in: installs Debian's slurm-wlm and munge when they are missing (needs root
# and apt-get), then starts munged, slurmctld and slurmd on localhost with their state under DIR, and
# waits until the node takes jobs.
#
#   slurm-local.sh up DIR      prints the SLURM_CONF path to export on its last line
#   slurm-local.sh down DIR    stops the daemons it started
#
# Exit 3 means Slurm cannot run here (no root, no apt-get, packages unavailable): the test is skipped.
set -euo pipefail
cmd=$1
dir=$(realpath -m "$2")

if [ "$cmd" = down ]; then
  for pidfile in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then echo "slurm-wlm and munge are not installed and cannot be (needs root and apt-get)"; exit 3; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq slurm-wlm munge; } >"$dir.apt.log" 2>&1; then
    echo "apt-get could not install slurm-wlm and munge: see $dir.apt.log"; exit 3
  fi
fi
[ "$(id -u)" = 0 ] || { echo "starting slurmd needs root"; exit 3; }

mkdir -p "$dir"/{state,spool,munge,log}
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

# munge: its own key, socket and files under DIR, so a system munged is left alone.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
       --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed"

cat >"$dir/slurm.conf" <<EOF
ClusterName=sqair-test
SlurmctldHost=$host
SlurmctldPort=$(( 20000 + RANDOM % 20000 ))
SlurmdPort=$(( 40001 + RANDOM % 20000 ))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -i
slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then echo "$SLURM_CONF"; exit 0; fi
  sleep 0.5
done
echo "the Slurm node did not become idle in 30 s: see $dir/log"; exit 1
