#!/usr/bin/env bash
# Stop the single-node Slurm that scripts/slurm-up.sh started (slurmd, slurmctld, slurmdbd, its MariaDB,
# munged), by their pid files.
# Idempotent; leaves the packages, configuration and job state in place (slurm-up.sh starts them again).
set -uo pipefail

[ "$(id -u)" = 0 ] || { echo "slurm-down: must run as root" >&2; exit 1; }
run=/run/slurm

stop() {  # stop NAME PIDFILE: SIGTERM, then wait up to 30 s, then SIGKILL
  local name="$1" pidfile="$2" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    echo "slurm-down: stopped $name ($pid)"
  fi
  rm -f "$pidfile"
}

stop slurmd "$run/slurmd.pid"
stop slurmctld "$run/slurmctld.pid"
stop slurmdbd "$run/slurmdbd.pid"
stop mariadbd /run/mysqld/mysqld.pid
stop munged /run/munge/munged.pid
exit 0
