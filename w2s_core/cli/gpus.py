"""`w2s gpus`: each GPU's utilisation, memory, temperature and power, and which w2s job holds its memory.

Read live through NVML (w2s_core.supervision.nvml), not from the store's samples, so it works with no
supervisor running. A process holding GPU memory is named by the w2s job whose process tree holds its
pid: the running jobs of the results folder (`--results-dir`, $W2S_RESULTS, as every command) as the
store records them (pid, process group, start time), their children found through psutil. On a
machine without an NVIDIA driver it says so in one line and exits 0 (`--json`: `gpus` empty and the
reason in `problem`).
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import psutil

from w2s_core.cli.output import json_text
from w2s_core.errors import W2SError
from w2s_core.status import JobStatus
from w2s_core.store import DB_NAME, Store
from w2s_core.supervision.nvml import GpuState, probe
from w2s_core.supervision.sampling import row_pids

GIB = 1024.0  # MiB per GiB


def running_owners(results_dir: str) -> dict[int, dict]:
    """pid -> {hash, model, kind} of the running w2s jobs of `results_dir` (empty without a database)."""
    root = Path(results_dir).expanduser().resolve()
    if not (root / DB_NAME).is_file():
        return {}
    try:
        with Store.open(root, readonly=True) as store:
            rows = store.jobs(status=JobStatus.RUNNING)
    except W2SError as exc:  # the GPUs are still worth showing
        print(f"warning: processes not matched to w2s jobs: {exc}", file=sys.stderr)
        return {}
    jobs = {r["hash"]: {"hash": r["hash"], "model": r["model"], "kind": r["kind"]} for r in rows}
    return {pid: jobs[h] for pid, h in row_pids(rows).items()}


def process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None  # gone, another user's, or in another pid namespace


def gpu_dict(gpu: GpuState, owners: dict[int, dict]) -> dict:
    """One GPU as `--json` prints it (memory in MiB, power in W, temperature in °C)."""
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "name": gpu.name,
        "util_pct": gpu.util_pct,
        "mem_used_mb": gpu.mem_used_mb,
        "mem_total_mb": gpu.mem_total_mb,
        "mem_free_mb": gpu.mem_free_mb,
        "temp_c": gpu.temp_c,
        "power_w": gpu.power_w,
        "processes": [
            {"pid": p.pid, "used_mb": p.used_mb, "name": process_name(p.pid), "job": owners.get(p.pid)}
            for p in gpu.processes
        ],
    }


def _figure(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def gpu_lines(gpu: dict) -> list[str]:
    """A GPU's line, then one line per process holding memory on it."""
    total = gpu["mem_total_mb"]
    share = f"({100 * gpu['mem_used_mb'] / total:3.0f}%)" if total else "(  -%)"
    memory = f"{gpu['mem_used_mb'] / GIB:5.1f} / {total / GIB:5.1f} GiB {share}"
    util = _figure(gpu["util_pct"], ".0f") + ("%" if gpu["util_pct"] is not None else "")
    temp = _figure(gpu["temp_c"], ".0f") + ("°C" if gpu["temp_c"] is not None else "")
    power = _figure(gpu["power_w"], ".0f") + (" W" if gpu["power_w"] is not None else "")
    lines = [f"{gpu['index']:>3}  {gpu['name'][:26]:<26} {util:>5}  {memory:<26} {temp:>5} {power:>6}"]
    for p in gpu["processes"]:
        job = p["job"]
        who = f"job {job['hash'][:10]} {job['model']} {job['kind']}" if job else "not a w2s job"
        lines.append(f"       pid {p['pid']:<8} {p['used_mb'] / GIB:5.1f} GiB  {p['name'] or '?':<16} {who}")
    return lines


def cmd_gpus(args: Namespace) -> int:
    gpus, problem = probe()
    if not gpus:
        problem = problem or "NVML lists no devices"
        print(json_text({"gpus": [], "problem": problem}) if args.json else f"no NVIDIA GPU: {problem}")
        return 0
    owners = running_owners(args.results_dir)
    rows = [gpu_dict(g, owners) for g in gpus]
    if args.json:
        print(json_text({"gpus": rows, "problem": None}))
        return 0
    print(f"{'GPU':>3}  {'name':<26} {'util':>5}  {'memory used / total':<26} {'temp':>5} {'power':>6}")
    for row in rows:
        print("\n".join(gpu_lines(row)))
    return 0
