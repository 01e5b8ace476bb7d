#!/usr/bin/env bash
# Install and start a single-node Slurm on this machine (the `slurm` tests and `--executor slurm` use it).
# Debian's slurm-wlm, slurmdbd, munge and mariadb-server packages; run as root; idempotent: a running
# cluster is left alone, a dead daemon is started again, a changed configuration restarts the daemons.
# No systemd is assumed (containers): the daemons run directly, with pid files under /run/slurm.
# Configured for this machine's CPUs (nproc) and memory (MemTotal less a margin); one partition, `debug`.
# Job accounting goes through slurmdbd to a local MariaDB because `sacct` (which submitit reads job states
# from) answers nothing without it. Prints one line; exits non-zero with the reason when something fails.
# Stop it with scripts/slurm-down.sh. Environment: SLURM_UP_TIMEOUT (seconds to wait for the node, 60);
# SLURM_UP_FORCE=1 overwrites a slurm.conf/slurmdbd.conf this script did not write (refused otherwise).
set -euo pipefail

die() { echo "slurm-up: $*" >&2; exit 1; }
run=/run/slurm
log=/var/log/slurm
timeout="${SLURM_UP_TIMEOUT:-60}"

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts munged/mariadbd/slurmdbd/slurmctld/slurmd)"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_ready() { sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)$'; }
summary() { sinfo -h -o '%P %D node(s) %c cpus %m MB %T' 2>/dev/null | head -1; }
db_up() { mariadb-admin ping >/dev/null 2>&1; }
wait_for() {  # wait_for SECONDS CMD...: true once CMD succeeds
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
  "$@"
}

install_packages() {
  local want=(slurm-wlm slurmdbd munge mariadb-server)
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v slurmdbd >/dev/null &&
     command -v munged >/dev/null && command -v mariadbd >/dev/null; then return 0; fi
  command -v apt-get >/dev/null || die "${want[*]} are not installed and there is no apt-get to install them"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq "${want[@]}" >/tmp/slurm-up-apt.log 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "${want[@]}"; } >>/tmp/slurm-up-apt.log 2>&1; } ||
    die "apt-get install ${want[*]} failed (see /tmp/slurm-up-apt.log)"
  id munge >/dev/null 2>&1 || die "no 'munge' user after installing munge"
  id slurm >/dev/null 2>&1 || die "no 'slurm' user after installing slurm-wlm"
}

start_munge() {  # a key (the package usually makes one), then munged as the munge user
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null
    else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
  munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
  munge_ok && return 0
  runuser -u munge -- /usr/sbin/munged --force >/dev/null 2>&1 || die "munged did not start (see /var/log/munge/munged.log)"
  wait_for 10 munge_ok || die "munged started but 'munge -n | unmunge' fails (see /var/log/munge/munged.log)"
}

start_mariadb() {  # the accounting database: local socket only, a small buffer pool; slurm logs in by socket
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! db_up; then
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --innodb-buffer-pool-size=64M \
      --innodb-lock-wait-timeout=900 --log-error="$log/mariadb.log" </dev/null >/dev/null 2>&1 &
    wait_for 30 db_up || die "mariadbd did not start (see $log/mariadb.log)"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not create the slurm_acct_db database"
}

MARK="# Written by w2s scripts/slurm-up.sh"
ours_or_absent() {  # a configuration file this script may (over)write: absent, ours, or SLURM_UP_FORCE=1
  [ ! -e "$1" ] || head -1 "$1" | grep -qF "$MARK" || [ -n "${SLURM_UP_FORCE:-}" ] ||
    die "$1 exists and was not written by this script (a real cluster's?): not touching it (SLURM_UP_FORCE=1 overwrites it)"
}
write_if_changed() {  # write_if_changed FILE CONTENT: prints 1 when the file changed
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then echo 0; else printf '%s\n' "$2" > "$1"; echo 1; fi
}

slurm_conf() {  # this machine's slurm.conf, on stdout
  local host cpus mem_mb margin real_mem hw layout
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  margin=$(( mem_mb / 10 > 512 ? mem_mb / 10 : 512 ))  # for the OS and the supervisor: 10%, at least 512 MB
  real_mem=$(( mem_mb - margin ))
  # The hardware's layout when slurmd sees the same CPU count (else slurmd logs a mismatch); CPUs alone otherwise.
  hw="$(slurmd -C 2>/dev/null | head -1 || true)"
  layout="CPUs=$cpus"
  if [[ "$hw" =~ CPUs=([0-9]+).*SocketsPerBoard=([0-9]+)\ CoresPerSocket=([0-9]+)\ ThreadsPerCore=([0-9]+) ]] &&
     [ "${BASH_REMATCH[1]}" = "$cpus" ]; then
    layout="CPUs=$cpus Sockets=${BASH_REMATCH[2]} CoresPerSocket=${BASH_REMATCH[3]} ThreadsPerCore=${BASH_REMATCH[4]}"
  fi
  cat <<EOF
$MARK: a single-node cluster on $host ($cpus CPUs, $real_mem of $mem_mb MB).
ClusterName=w2s
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
MpiDefault=none
SwitchType=switch/none
# No cgroups in containers: track job processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default a job takes the whole node's memory and jobs never share it.
DefMemPerCPU=$(( real_mem / cpus ))
ReturnToService=2
SlurmdTimeout=60
SlurmctldTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=30
JobRequeue=1
# Job accounting through slurmdbd (see the header): sacct lists jobs, steps and end states.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 $layout RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

slurmdbd_conf() {
  cat <<EOF
$MARK: accounting for the single-node cluster, in the local MariaDB.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$run/slurmdbd.pid
LogFile=$log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
}

restart() {  # restart NAME [ARGS...]: stop the daemon of this pid file (if any), then start it
  local name="$1"; shift
  if alive "$run/$name.pid"; then
    local pid; pid="$(cat "$run/$name.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$run/$name.pid"
  "/usr/sbin/$name" "$@" || die "$name did not start (see $log/$name.log)"
}

# Already up with this configuration: say so and stop here (scripts/test.sh calls this on every run).
if command -v slurmd >/dev/null && alive "$run/slurmctld.pid" && alive "$run/slurmd.pid" &&
   alive "$run/slurmdbd.pid" && [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" = "$(slurm_conf)" ] &&
   [ "$(cat /etc/slurm/slurmdbd.conf 2>/dev/null)" = "$(slurmdbd_conf)" ] && node_ready; then
  echo "slurm-up: already running: $(summary)"
  exit 0
fi
ours_or_absent /etc/slurm/slurm.conf
ours_or_absent /etc/slurm/slurmdbd.conf
install_packages
start_munge
mkdir -p /etc/slurm "$run" "$log" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm "$log" /var/lib/slurm /var/lib/slurm/slurmctld "$run"
start_mariadb

dbd_changed="$(write_if_changed /etc/slurm/slurmdbd.conf "$(slurmdbd_conf)")"
chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
conf_changed="$(write_if_changed /etc/slurm/slurm.conf "$(slurm_conf)")"

if [ "$dbd_changed" = 1 ] || ! alive "$run/slurmdbd.pid"; then restart slurmdbd; fi
dbd_up() { sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1; }
wait_for 30 dbd_up || die "slurmdbd is not answering (see $log/slurmdbd.log)"
if [ -z "$(sacctmgr -n -P list cluster w2s format=cluster 2>/dev/null)" ]; then
  sacctmgr -i add cluster w2s >/dev/null || die "sacctmgr add cluster w2s failed (see $log/slurmdbd.log)"
fi

if [ "$conf_changed" = 1 ] || ! alive "$run/slurmctld.pid"; then restart slurmctld; fi
ctld_up() { scontrol ping 2>/dev/null | grep -q UP; }
wait_for 20 ctld_up || die "slurmctld is not answering (see $log/slurmctld.log)"
if [ "$conf_changed" = 1 ] || ! alive "$run/slurmd.pid"; then restart slurmd; fi

# Wait for the node. A node left DOWN/DRAINED by an earlier run is resumed.
host="$(hostname -s)"
for _ in $(seq $(( timeout * 2 ))); do
  node_ready && break
  case "$(sinfo -h -N -o '%T' 2>/dev/null | head -1)" in
    down*|drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true;;
  esac
  sleep 0.5
done
node_ready || die "node $host is not idle after ${timeout}s: $(sinfo -h -N -o '%T %E' 2>/dev/null | head -1) (see $log/slurmd.log)"
echo "slurm-up: running: $(summary)"
