#!/usr/bin/env bash
# .ci/slurm-test.sh: a meshsim sweep on a real one-node Slurm cluster.
#
# Installs Debian's slurm-wlm and munge if missing, starts munged, slurmctld
# and slurmd on this machine (loopback only, its own configuration and state
# in a temporary directory, nothing in /etc/slurm), emits a small sweep as a
# job array (meshsim sweep --emit slurm), submits it with sbatch --wait,
# merges the tasks (meshsim merge) and checks the merged sweep.csv against
# a local run of the same sweep. It stops the daemons it started (by their
# PIDs) on exit. Needs root (the daemons and the job run as root).
#
#   bash .ci/slurm-test.sh
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"

fail() {
	printf '\nFAIL: slurm test: %s\n' "$*" >&2
	exit 1
}

[[ "$(id -u)" == 0 ]] || fail "needs root (slurmd runs jobs as root here)"
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
	echo "installing Debian's slurm-wlm and munge"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

work="$(mktemp -d /tmp/meshd-slurm.XXXXXX)"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	rm -rf "$work"
}
trap cleanup EXIT

# munge: our own key, socket and state (another munged may run here).
mkdir -p "$work/munge/run" "$work/munge/log" "$work/munge/lib"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1 count=128 status=none
chmod 700 "$work/munge" "$work/munge/run" "$work/munge/log" "$work/munge/lib"
chmod 400 "$work/munge/munge.key"
munge_socket="$work/munge/run/munge.socket.2"
munged --force --key-file="$work/munge/munge.key" --socket="$munge_socket" \
	--pid-file="$work/munge/run/munged.pid" --log-file="$work/munge/log/munged.log" --seed-file="$work/munge/lib/munged.seed"
for _ in $(seq 50); do
	[[ -s "$work/munge/run/munged.pid" ]] && break
	sleep 0.1
done
[[ -s "$work/munge/run/munged.pid" ]] || fail "munged did not start: $(cat "$work/munge/log/munged.log" 2>/dev/null)"
pids+=("$(cat "$work/munge/run/munged.pid")")

# Slurm: one node (this machine) and one partition, on loopback.
host="$(hostname -s)"
cpus="$(nproc)"
mkdir -p "$work/state" "$work/spool" "$work/log"
export SLURM_CONF="$work/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=meshdci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${munge_socket}
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN
PartitionName=ci Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -i
for _ in $(seq 100); do
	[[ -s "$work/slurmctld.pid" ]] && break
	sleep 0.1
done
[[ -s "$work/slurmctld.pid" ]] || fail "slurmctld did not start: $(tail -20 "$work/log/slurmctld.log" 2>/dev/null)"
pids+=("$(cat "$work/slurmctld.pid")")
slurmd -N "$host"
for _ in $(seq 100); do
	[[ -s "$work/slurmd.pid" ]] && break
	sleep 0.1
done
[[ -s "$work/slurmd.pid" ]] || fail "slurmd did not start: $(tail -20 "$work/log/slurmd.log" 2>/dev/null)"
pids+=("$(cat "$work/slurmd.pid")")
state=""
for _ in $(seq 300); do
	state="$(sinfo -h -n "$host" -o '%T' 2>/dev/null || true)"
	[[ "$state" == idle* ]] && break
	sleep 0.1
done
[[ "$state" == idle* ]] || fail "node $host is \"$state\", not idle: $(tail -20 "$work/log/slurmctld.log" "$work/log/slurmd.log")"
sinfo

# A small sweep: 2 spreading factors x 2 seeds, as a job array.
go build -o "$work/meshsim" ./simulations/cmd/meshsim
sweep=(simulations/scenarios/quickstart.toml --quiet --set duration=6m --set traffic.start=1m
	--set traffic.rate=0.01 --param radio.sf=7,8 --seeds 2)
"$work/meshsim" sweep "${sweep[@]}" --out "$work/array" --emit slurm --meshsim "$work/meshsim" --name meshsim-ci
timeout 600 sbatch --wait "$work/array/sweep.slurm" || {
	cat "$work"/array/logs/*.out 2>/dev/null || true
	fail "the job array failed: $(tail -20 "$work/log/slurmctld.log")"
}
"$work/meshsim" merge "$work/array"

# The merged results are those of the same sweep run here.
"$work/meshsim" sweep "${sweep[@]}" --out "$work/local" --jobs 2
for f in sweep.csv sweep-ci.csv; do
	cmp "$work/local/$f" "$work/array/$f" || fail "$f of the job array differs from the local sweep's"
done
rows="$(($(wc -l <"$work/array/sweep.csv") - 1))"
[[ "$rows" == 4 ]] || fail "sweep.csv has $rows runs, want 4"
echo "slurm: 4 array tasks ran on a one-node cluster and merged into the local sweep's sweep.csv"
