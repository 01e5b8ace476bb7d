"""Helpers of tests/test_gpu_device.py: where a GPU test may run, the processes it starts (a GPU memory
holder, `w2s` whose supervisor samples often, job folders run by the trainer under a spy) and the recipes.

Their CPU parts are checked on every machine by that module's last two tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, poll_until

from w2s_core.errors import W2SError
from w2s_core.jobdir import JobDir
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.supervision import nvml, supervisor
from w2s_core.supervision.slots import torch_cuda_count

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SAMPLE_S = 0.25  # the supervisor's GPU sampling interval here (GPU_SAMPLE_S is 5 s: jobs of seconds slip past)
WAIT_LINE = re.compile(r"GPU (\S+) has ([\d.]+) GB in use by others")  # placement._not_busy's phrase
HOLDER_LINE = re.compile(r"holder pid (\d+) holds ([\d.]+) GiB on (\S+)")


# -- where the GPU tests run -------------------------------------------------------------------------------


def gpu_problem() -> str | None:
    """Why the GPU tests cannot run here (None: they can). NVML first: without a driver this costs no torch import."""
    try:
        import pynvml
    except ImportError as exc:
        return f"no NVML bindings ({exc})"
    if "fake_nvml" in str(getattr(pynvml, "__file__", "")):
        return "pynvml is the tests' stand-in (tests/fake_nvml), not NVML"
    states, problem = nvml.probe()
    if not states:
        return f"NVML lists no GPU: {problem or 'no devices'}"
    if not torch_cuda_count():
        return "NVML sees a GPU but torch finds no CUDA device (a CPU-only torch build?)"
    return None


GPU_PROBLEM = gpu_problem()


def on_gpu(test):
    """Mark a test `gpu` and skip it, saying why, where there is no CUDA GPU with NVML."""
    skip = pytest.mark.skipif(GPU_PROBLEM is not None, reason=f"needs a CUDA GPU and NVML: {GPU_PROBLEM}")
    return pytest.mark.gpu(skip(test))


def first_gpu() -> str:
    """The one GPU these tests use: the first of $CUDA_VISIBLE_DEVICES, else NVML's GPU 0."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[0] if visible else "0"


def gpu_env(**extra: str) -> dict:
    """The environment of every process started here: this checkout importable from any folder (the
    supervisor runs in the results folder), the hub offline, and only `first_gpu()` visible, numbered as
    NVML numbers it, so the holder, the supervisor's pool and the jobs all mean the same GPU."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    gpu = {"CUDA_VISIBLE_DEVICES": first_gpu(), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", **gpu, **extra}


def show(capsys, title: str, text: object) -> None:
    """Print past pytest's capture, so a passing run's figures can be quoted."""
    with capsys.disabled():
        print(f"\n[gpu] {title}: {text}", flush=True)


# -- the holder: a process that is not w2s's, holding GPU memory -----------------------------------------

HOLDER = """
import os, sys, time
import torch
gib, device = float(sys.argv[1]), sys.argv[2]
block = torch.ones(int(gib * 2**30), dtype=torch.uint8, device=device)  # written: the memory is really taken
if block.is_cuda:
    torch.cuda.synchronize()
print(f"holder pid {os.getpid()} holds {block.numel() / 2**30:g} GiB on {block.device}", flush=True)
time.sleep(600)
"""


@dataclass
class Holder:
    """HOLDER in a subprocess: `start` returns once it holds the memory; `stop` kills it (idempotent)."""

    gib: float
    device: str
    out: Path
    proc: subprocess.Popen | None = None
    pid: int = 0

    def start(self, timeout: float = 120.0) -> Holder:
        with open(self.out, "w") as out:
            cmd = [sys.executable, "-c", HOLDER, str(self.gib), self.device]
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=gpu_env())
        poll_until(lambda: self.proc.poll() is not None or HOLDER_LINE.search(self.out.read_text()), timeout, "holder")
        found = HOLDER_LINE.search(self.out.read_text())
        assert found, f"the holder exited ({self.proc.poll()}) before holding memory:\n{self.out.read_text()[-3000:]}"
        self.pid = int(found.group(1))
        assert self.pid == self.proc.pid and float(found.group(2)) == pytest.approx(self.gib)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)


# -- w2s itself: the CLI, its supervisor sampling every SAMPLE_S -------------------------------------------

SUPERVISE = """
import sys
from w2s_core.supervision import sampling, supervisor
sampling.GPU_SAMPLE_S = {sample_s!r}
sys.exit(supervisor.main(sys.argv[1:]))
"""
W2S = """
import sys
from w2s_core.supervision import supervisor
supervisor.ENTRY = ["-c", {supervise!r}]
from w2s_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def w2s(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`w2s --results-dir ROOT ARGS...`, whose background supervisor samples the GPUs every SAMPLE_S."""
    code = W2S.format(supervise=SUPERVISE.format(sample_s=SAMPLE_S))
    cmd = [sys.executable, "-c", code, "--results-dir", str(root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=gpu_env(), timeout=120)


def recipe_text(data: str, train: str) -> str:
    """A recipe over the two built-in tiny models: their GT jobs, then one xent transfer (GPT-2 to BERT)."""
    return (
        f'name = "gpu"\nseeds = [0]\n[data]\nname = "synthetic"\n{data}\n[train]\n{train}\n'
        '[[models]]\nname = "gpt"\npath = "tiny-random-gpt2"\n'
        '[[models]]\nname = "bert"\npath = "tiny-random-bert"\n[[transfer]]\nloss = "xent"\n'
    )


# enough data that each job holds the GPU for seconds: sampled every SAMPLE_S
PLACED = recipe_text("n_train = 800\nn_test = 100", "epochs = 2\nbatch_size = 16\nminibatch_size = 8")


def busy_gb(reason: str | None) -> float | None:
    """The GB in use by others that a wait reason names (placement._not_busy), None if it names none."""
    found = WAIT_LINE.search(reason or "")
    return float(found.group(2)) if found else None


def jobs(root: Path) -> list[dict]:
    try:
        with Store.open(root, readonly=True) as store:
            return list(store.jobs())
    except W2SError:  # not created yet by the supervisor
        return []


def until(root: Path, predicate, timeout: float, what: str):
    """poll_until, whose timeout says where the run stands: each job's status and wait, the supervisor's log."""
    try:
        return poll_until(predicate, timeout, what, 0.2)
    except AssertionError:
        state = [(j["kind"], j["model"], j["status"], j["wait_reason"], j["error"]) for j in jobs(root)]
        log = root / supervisor.LOG_NAME
        tail = log.read_text()[-3000:] if log.is_file() else "(no supervisor log)"
        raise AssertionError(f"timed out waiting for {what}; jobs {state}\nsupervisor.log:\n{tail}") from None


def stop_run(root: Path) -> None:
    """Kill what the run left (a test that failed midway): the supervisor first, so it starts nothing more."""
    current = supervisor.holder(root) if root.is_dir() else None
    groups = [current["pid"]] if current and current.get("pid") else []
    groups += [j["pgid"] for j in jobs(root) if j["status"] == JobStatus.RUNNING and j["pgid"]]
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def pick_gpu(gpus: list[dict], pool_id: str) -> dict:
    """The GPU a pool id names in `w2s gpus --json`: an NVML index, or a UUID (prefix)."""
    for gpu in gpus:
        if str(gpu["index"]) == pool_id or gpu["uuid"].startswith(pool_id) or gpu["uuid"] == f"GPU-{pool_id}":
            return gpu
    raise AssertionError(f"no GPU {pool_id} in w2s gpus: {[g['index'] for g in gpus]}")


# -- job folders run by the trainer, under a spy --------------------------------------------------------

# 12 optimiser steps; lr 0.003 keeps float16's scaled gradients clear of overflow (none on a CPU up to lr 0.01)
NUMERICS = "epochs = 2\nlr = 0.003\nbatch_size = 16\nminibatch_size = 16\nmax_length = 32\n"
# eager and compiled: dtype "auto", float32 weights and bf16 autocast on a GPU (precision.py); fp16 vs fp32
VARIANTS = {
    "eager": 'dtype = "auto"',  # the tiny models' own default is float32 (spec.registry)
    "compiled": 'dtype = "auto"\ncompile = true',
    "fp32": 'dtype = "float32"',
    "fp16": 'dtype = "float16"',
}

SPY = """
import atexit, json, os, runpy, sys
from pathlib import Path
os.environ.setdefault("OMP_NUM_THREADS", "1")  # what the trainer's own main sets before torch loads
import torch
seen = {"scales": [], "compiled": []}
update, compile_ = torch.amp.GradScaler.update, torch.nn.Module.compile
def spy_update(self, *args, **kwargs):
    update(self, *args, **kwargs)
    seen["scales"].append(float(self.get_scale()))
def spy_compile(self, *args, **kwargs):
    seen["compiled"].append(type(self).__name__)
    return compile_(self, *args, **kwargs)
torch.amp.GradScaler.update, torch.nn.Module.compile = spy_update, spy_compile
def record():
    from torch._dynamo.utils import counters
    seen["graphs"] = int(counters["stats"]["unique_graphs"])
    (Path(sys.argv[1]) / "spy.json").write_text(json.dumps(seen))
atexit.register(record)
runpy.run_module("w2s_core.training", run_name="__main__", alter_sys=True)
"""


def gpt_spec(extra: str) -> dict:
    """The tiny GPT-2's ground-truth job spec with the extra [train] lines."""
    text = recipe_text("n_train = 192\nn_test = 64", NUMERICS + extra)
    plan = build_plan(parse_recipe(tomllib.loads(text), Path("numerics.toml"), text))
    return next(j.spec for j in plan.jobs if j.kind == "gt" and j.model == "gpt")


@dataclass
class Job:
    """A job folder run by `python -c SPY JOB_DIR` (the trainer's own __main__), and what it left."""

    path: Path
    proc: subprocess.Popen
    started: float = field(default_factory=time.time)
    seconds: float = 0.0

    def log(self) -> str:
        return JobDir(self.path).log.read_text()[-4000:] if JobDir(self.path).log.is_file() else ""

    def check(self, device: str) -> None:
        assert self.proc.returncode == 0, f"{self.path.name} exited {self.proc.returncode}:\n{self.log()}"
        assert JobDir(self.path).read_env()["device"].startswith(device)

    @property
    def probs(self) -> list[float]:
        return JobDir(self.path).read_predictions()["test"]["probs"]

    @property
    def spy(self) -> dict:
        return json.loads((self.path / "spy.json").read_text())


def start_job(path: Path, spec: dict, env: dict) -> Job:
    folder = JobDir(path)
    folder.write_spec(spec)
    with open(folder.log, "w") as log:
        cmd = [sys.executable, "-c", SPY, str(path.resolve())]
        return Job(path, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=path, env=env))


def wait_jobs(running: dict[str, Job], timeout: float) -> None:
    """Wait for every job, noting when each ended; any still running at the deadline is killed (its check
    then fails, with its log)."""
    deadline = time.time() + timeout
    while any(job.proc.poll() is None for job in running.values()) and time.time() < deadline:
        for job in running.values():
            if job.proc.poll() is not None and not job.seconds:
                job.seconds = time.time() - job.started
        time.sleep(0.2)
    for job in running.values():
        if job.proc.poll() is None:
            job.proc.kill()
        job.proc.wait()
        job.seconds = job.seconds or time.time() - job.started


def max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))
