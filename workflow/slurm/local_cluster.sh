#!/usr/bin/env bash
# A throw-away single-node SLURM on this machine (munged + slurmctld + slurmd on localhost), to run the
# workflow through workflow/profiles/slurm exactly as on a cluster. Debian: apt-get install slurm-wlm munge.
#
#   workflow/slurm/local_cluster.sh start    # write configs, start the daemons, wait until the node is idle
#   workflow/slurm/local_cluster.sh status   # daemons and `sinfo`
#   workflow/slurm/local_cluster.sh stop     # stop the daemons (configs and logs stay for reading)
#
# Everything lives under $ERASELAB_SLURM_DIR (default /tmp/eraselab-slurm): etc/ (slurm.conf, cgroup.conf),
# state/, spool/, log/ (daemon logs and jobcomp.log, one line per finished job), run/ (pids, munge socket).
# /etc/munge is not touched. /etc/slurm/slurm.conf becomes a link to etc/slurm.conf while the cluster runs
# (`start` refuses if another slurm.conf is there; `stop` removes the link): the Snakemake jobstep plugin
# clears SLURM_* variables, SLURM_CONF included, before its `srun`, so srun inside a job only finds the
# config at the default path. Ports: $ERASELAB_SLURM_PORT (slurmctld, default 6817) and the next one (slurmd).
# One node = this host: CPUs from nproc, RealMemory from free, GPUs only where nvidia-smi lists some.
# Two partitions on that node, named as the profile's: cpu (default) and gpu.
set -euo pipefail

DIR="${ERASELAB_SLURM_DIR:-/tmp/eraselab-slurm}"
CTLD_PORT="${ERASELAB_SLURM_PORT:-6817}"
SLURMD_PORT=$((CTLD_PORT + 1))
CONF="$DIR/etc/slurm.conf"
SYSTEM_CONF="/etc/slurm/slurm.conf"
SOCKET="$DIR/run/munge.socket.2"
NODE="$(hostname -s)"
START_TIMEOUT_S="${ERASELAB_SLURM_START_TIMEOUT:-60}"

die() { echo "local_cluster: error: $*" >&2; exit 1; }
log() { echo "local_cluster: $*"; }

require_tools() {
    local missing=()
    for tool in munged mungekey slurmctld slurmd sinfo scontrol nproc free; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [[ ${#missing[@]} -eq 0 ]] || die "missing ${missing[*]}; on Debian: apt-get install -y slurm-wlm munge"
    [[ $(id -u) -eq 0 ]] || die "run as root: slurmd must be root to start jobs (and here owns all daemons)"
}

# The pid in a pidfile, if that process is alive.
alive_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

gpu_count() {
    command -v nvidia-smi >/dev/null || { echo 0; return; }
    nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true
}

write_configs() {
    local cpus mem_mb gpus node_gres="" gres_types=""
    cpus="$(nproc)"
    # 90 % of physical memory: the rest stays for the OS and the daemons themselves.
    mem_mb="$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')"
    gpus="$(gpu_count)"
    mkdir -p "$DIR"/{etc,state,spool,log}
    mkdir -p -m 0700 "$DIR/munge"
    # munged insists that everyone can traverse to its socket.
    mkdir -p -m 0755 "$DIR/run"
    chmod 0755 "$DIR"
    if [[ "$gpus" -gt 0 ]]; then
        gres_types="GresTypes=gpu"
        node_gres="Gres=gpu:$gpus"
        printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/nvidia[0-%d]\n' "$NODE" $((gpus - 1)) \
            > "$DIR/etc/gres.conf"
    else
        rm -f "$DIR/etc/gres.conf"
    fi
    cat > "$CONF.tmp" <<EOF
# Written by workflow/slurm/local_cluster.sh: a one-node test cluster on $NODE.
ClusterName=eraselab-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: containers rarely let slurmd write them; processes are tracked by parentage instead.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: finished jobs are kept by slurmctld for an hour (squeue --states=all sees them, which
# the Snakemake plugin's squeue status query needs) and logged one per line to jobcomp.log.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
MinJobAge=3600
ReturnToService=2
# The node's declared size wins over what slurmd detects (it may see more cores than nproc allows).
SlurmdParameters=config_overrides
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $node_gres State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    # slurmd reads cgroup.conf beside slurm.conf; with the plugins above nothing is constrained.
    cat > "$DIR/etc/cgroup.conf" <<EOF
CgroupPlugin=autodetect
IgnoreSystemd=yes
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
    [[ -f "$DIR/munge/munge.key" ]] || mungekey --create --keyfile="$DIR/munge/munge.key"
    log "node $NODE: CPUs=$cpus RealMemory=${mem_mb}MB GPUs=$gpus; config $CONF"
}

# Point SLURM's default config path at ours, never over a slurm.conf someone else wrote.
link_system_conf() {
    if [[ -e "$SYSTEM_CONF" || -L "$SYSTEM_CONF" ]] && [[ "$(readlink "$SYSTEM_CONF")" != "$CONF" ]]; then
        die "$SYSTEM_CONF exists and is not this script's link: a real SLURM is configured here; stop it or move that file"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$CONF" "$SYSTEM_CONF"
}

unlink_system_conf() {
    if [[ -L "$SYSTEM_CONF" && "$(readlink "$SYSTEM_CONF")" == "$CONF" ]]; then rm -f "$SYSTEM_CONF"; fi
}

port_in_use() {
    ss -ltn 2>/dev/null | awk '{print $4}' | grep -Eq "[:.]$1\$"
}

start_munged() {
    if alive_pid "$DIR/run/munged.pid" >/dev/null; then return; fi
    munged --socket="$SOCKET" --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
        || die "munged did not start; see $DIR/log/munged.log"
}

start_daemon() {  # name, then its command line; the daemon forks itself and writes its pidfile
    local name="$1"; shift
    if alive_pid "$DIR/run/$name.pid" >/dev/null; then return; fi
    "$@" >>"$DIR/log/$name.stdout" 2>&1 || die "$name did not start; see $DIR/log/$name.log"
}

node_state() {
    sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null | head -1 | tr -d '*~#' || true
}

start() {
    require_tools
    if ! alive_pid "$DIR/run/slurmctld.pid" >/dev/null; then
        for port in "$CTLD_PORT" "$SLURMD_PORT"; do
            ! port_in_use "$port" || die "port $port is taken (another SLURM?); set ERASELAB_SLURM_PORT"
        done
        write_configs
    fi
    link_system_conf
    export SLURM_CONF="$CONF"
    start_munged
    # -i: start even if saved state from an earlier run does not match this configuration.
    start_daemon slurmctld slurmctld -f "$CONF" -i
    start_daemon slurmd slurmd -f "$CONF" -N "$NODE"
    local waited=0 state=""
    while (( waited < START_TIMEOUT_S )); do
        state="$(node_state)"
        [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] && break
        # A node left down by an earlier unclean stop: bring it back.
        if [[ "$state" == down || "$state" == drained || "$state" == draining ]]; then
            scontrol update nodename="$NODE" state=resume 2>/dev/null || true
        fi
        sleep 1; waited=$((waited + 1))
    done
    [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] \
        || die "node $NODE is '${state:-unreachable}' after ${START_TIMEOUT_S}s; see $DIR/log/slurmctld.log and slurmd.log"
    sinfo
    log "ready: sbatch/squeue/sinfo use $CONF (linked from $SYSTEM_CONF)"
}

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        if pid="$(alive_pid "$DIR/run/$name.pid")"; then
            kill "$pid"
            for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
            log "stopped $name (pid $pid)"
        fi
        rm -f "$DIR/run/$name.pid"
    done
    unlink_system_conf
}

status() {
    local name pid rc=0
    for name in munged slurmctld slurmd; do
        if pid="$(alive_pid "$DIR/run/$name.pid")"; then
            log "$name running (pid $pid)"
        else
            log "$name not running"; rc=1
        fi
    done
    if [[ $rc -eq 0 ]]; then SLURM_CONF="$CONF" sinfo; fi
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status (got '${1:-}')" ;;
esac
