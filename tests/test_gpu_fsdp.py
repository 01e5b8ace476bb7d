"""A real FSDP run on one GPU (issue 14's leftover GPU check): the same tiny recipe through `w2s run`, sharded
by FSDP and not, trains the same model.

Marked `gpu` and skipped without a CUDA GPU and NVML (`gpu_helpers.GPU_PROBLEM` says which, as for
tests/test_gpu_device.py). On a GPU box, from the repository root (59 s on an H200):

    python -m pytest -q -n 0 -s tests/test_gpu_fsdp.py

What w2s allows with one process: `[launch] fsdp = true` shards only a multi-GPU job (`gpus_per_job` > 1,
w2s_core/spec/launch.py; planning.fsdp_for returns None for one GPU), so a one-GPU job with it alone is
started directly, unsharded (`w2s run --dry-run` says "accelerate: none"). One sharded process is what a
recipe's own `[launch] accelerate_config` gives: here that file is the config w2s itself renders for a
sharded job (launch_config.settings + fsdp_config: FSDP1, one unit per GPT2Block, FULL_SHARD,
use_orig_params), written with launch_config.write, plus a free rendezvous port. The job is then started
as `accelerate launch --config_file FILE -m w2s_core.training JOB_DIR` (torchrun, one rank, NCCL), its
model wrapped by FSDP; torch turns FULL_SHARD into NO_SHARD on a world of one (it warns in the job's
log), so this proves the wrapping, flat parameters, use_orig_params, the optimizer over FSDP's parameters
and evaluation through the wrapper, not sharding across ranks (that needs two GPUs).

The recipe: two float32 tiny GPT-2s (hidden 16 and 64, two layers each) and the default xent transfer:
three jobs (two GT, one transfer reading the weak GT job's labels), 1200 synthetic examples, 3 epochs
of batch 32 (57 Adam steps per job) at lr 1e-3. Launch keys are no part of a job key, so both runs
plan the same three job hashes, in two results folders; they run at once, each in its own supervisor,
on the one GPU (`min_free_gb` lets a supervisor share a GPU the other's jobs use).

Checked: both runs succeed; each FSDP job's provenance names the config (`--config_file`, its text:
distributed_type FSDP, one process, GPT2Block, use_orig_params) and its env.json (written by the
trainer, in the job folder) says FSDP, one process, on CUDA, where the plain job's says NO; and every
split's P(class 1) agrees within TOLERANCE.

Tolerance: float32 weights and compute (`dtype = "float32"`: no autocast, TF32 is off by default), so the
two runs differ only by float rounding (FSDP's flat-parameter views, its gradient reduction over one
rank, kernels the allocator's alignment may pick). At this lr the training is not chaotic: changing the
summation order (the same recipe on a CPU with 1 and 2 threads) moved P(class 1) by at most 1.2e-7 over
the three jobs, where the predictions moved 0.017 to 0.035 on average from uniform (0.04 to 0.07 at most).
TOLERANCE = 1e-4 leaves ~1000x room for GPU kernels' rounding, while a run that did not train, trained
other parameters or on other data would differ by ~1e-2. (At lr 1e-2 the same thread change moved them
by 0.34: a recipe like that cannot tell a bug from rounding.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from gpu_helpers import GPU_PROBLEM, gpu_env

from w2s_core.jobdir import Event, JobDir
from w2s_core.spec.shapes import model_shape
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.supervision import launch_config
from w2s_core.supervision.slots import pick_port

TOLERANCE = 1e-4
RUN_TIMEOUT_S = 240  # both `w2s run`s, at once; together they are expected to take ~45 s on an H200
WEAK_TINY = {"hidden_size": 16, "num_layers": 2}
STRONG_TINY = {"hidden_size": 64, "num_layers": 2}


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(GPU_PROBLEM is not None, reason=f"needs a CUDA GPU and NVML: {GPU_PROBLEM}"),
]


def tiny(spec: dict) -> str:
    return "{ " + ", ".join(f"{k} = {v}" for k, v in spec.items()) + " }"


def recipe_text(launch: str) -> str:
    """The recipe (module docstring) with the [launch] lines `launch`."""
    return f"""name = "gpu-fsdp"
seeds = [0]
[data]
name = "synthetic"
n_train = 1200
n_test = 400
[train]
mode = "finetune"
epochs = 3
lr = 0.001
batch_size = 32
minibatch_size = 32
max_length = 32
dtype = "float32"
[[models]]
name = "gpt2-weak"
path = "tiny-random-gpt2"
tiny = {tiny(WEAK_TINY)}
[[models]]
name = "gpt2-strong"
path = "tiny-random-gpt2"
tiny = {tiny(STRONG_TINY)}
[launch]
min_free_gb = 2
{launch}"""


def fsdp_config_file(folder: Path) -> Path:
    """The accelerate config w2s renders for a sharded job of one process, with a free rendezvous port."""
    block = model_shape({"name": "gpt2-strong", "path": "tiny-random-gpt2", "tiny": STRONG_TINY}).block
    config = launch_config.settings(1, fsdp=launch_config.fsdp_config(block))
    config["main_process_port"] = pick_port(set())  # accelerate's default 29500 may be taken on a shared box
    folder.mkdir(parents=True, exist_ok=True)
    return launch_config.write(folder, config)


def start_run(results: Path, recipe: Path) -> subprocess.Popen:
    """`w2s run RECIPE` into `results`, as conftest.run_w2s runs it (hub offline), without waiting."""
    env = gpu_env()
    command = [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), "run", str(recipe)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)


def logs(results: Path) -> str:
    """The supervisor's log and each job's log tail: what a failure message needs."""
    parts = [f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(results.glob("**/*log*.txt"))]
    sup = results / "supervisor.log"
    if sup.is_file():
        parts.append(f"--- {sup}\n{sup.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def finish(proc: subprocess.Popen, results: Path, recipe: Path, deadline: float) -> tuple[int | None, str, float]:
    """Wait for a run until `deadline` (time.monotonic): (exit status, None when it did not end, its output,
    seconds). A run that does not end is stopped, and its jobs cancelled (their process trees killed), so
    nothing is left holding the GPU."""
    try:
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        return proc.returncode, out, time.monotonic() - (deadline - RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        cancel = [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), "cancel", str(recipe)]
        subprocess.run(cancel, cwd=ROOT, env=gpu_env(), capture_output=True, timeout=60)
        return None, out, float(RUN_TIMEOUT_S)


def check_ran(name: str, outcome: tuple[int | None, str, float], results: Path) -> None:
    status, out, _ = outcome
    what = f"did not end in {RUN_TIMEOUT_S} s (its jobs were cancelled)" if status is None else f"exited {status}"
    assert status == 0, f"{name}: `w2s run` {what}\n{out[-4000:]}\n{logs(results)}"


def done_jobs(results: Path) -> dict[str, dict]:
    with Store.open(results, readonly=True) as store:
        jobs = {j["hash"]: j for j in store.jobs()}
    assert jobs and all(j["status"] == JobStatus.DONE for j in jobs.values()), {h: j["status"] for h, j in jobs.items()}
    return jobs


def check_sharded(job: dict, config: Path) -> None:
    """The FSDP job ran under `config`, as FSDP, in one process on CUDA (provenance, env.json)."""
    command = job["provenance"]["command"]
    named = command[command.index("--config_file") + 1] if "--config_file" in command else None
    assert "accelerate.commands.launch" in command and named == str(config.resolve()), command
    rendered = yaml.safe_load(job["provenance"]["accelerate_config"])
    fsdp = rendered["fsdp_config"]
    assert rendered["distributed_type"] == "FSDP" and rendered["num_processes"] == 1, rendered
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "GPT2Block" and fsdp["fsdp_use_orig_params"] is True
    env = JobDir(Path(job["dir"])).read_env()
    assert env and env["distributed_type"].split(".")[-1] == "FSDP", env
    assert env["num_processes"] == 1 and env["device"].startswith("cuda"), env


def check_plain(job: dict) -> None:
    """The unsharded job was started directly and trained without a distributed wrapper, on CUDA."""
    assert job["provenance"]["command"][1:3] == ["-m", "w2s_core.training"], job["provenance"]["command"]
    env = JobDir(Path(job["dir"])).read_env()
    assert env and env["distributed_type"].split(".")[-1] == "NO" and env["device"].startswith("cuda"), env


def accuracy_of(job: dict) -> float:
    return JobDir(Path(job["dir"])).read_result()[Event.TEST_ACC]


def compare(plain: dict, sharded: dict) -> list[dict]:
    """Per job and split: how far the two runs' P(class 1) lie apart, and how far they moved from 0.5."""
    rows = []
    for h, job in sorted(plain.items(), key=lambda kv: (kv[1]["kind"], kv[1]["model"])):
        a = JobDir(Path(job["dir"])).read_predictions()
        b = JobDir(Path(sharded[h]["dir"])).read_predictions()
        assert set(a) == set(b), (set(a), set(b))
        for split in sorted(a):
            p, q = a[split]["probs"], b[split]["probs"]
            assert len(p) == len(q) > 0 and a[split]["labels"] == b[split]["labels"]
            rows.append(
                {
                    "job": f"{job['kind']} {job['model']}",
                    "split": split,
                    "n": len(p),
                    "max_diff": max(abs(x - y) for x, y in zip(p, q)),
                    "moved": sum(abs(x - 0.5) for x in p) / len(p),
                    "acc": (accuracy_of(job), accuracy_of(sharded[h])),
                }
            )
    return rows


def report(rows: list[dict], seconds: dict[str, float], sharded: dict) -> None:
    """The figures, printed (`-s` shows them)."""
    logged = [JobDir(Path(j["dir"])).log.read_text(errors="replace") for j in sharded.values()]
    said = sum("NO_SHARD" in text for text in logged)
    print(f"\nwall: plain run {seconds['plain']:.1f} s, FSDP run {seconds['fsdp']:.1f} s (both at once)", flush=True)
    print(f"job logs where torch turned FULL_SHARD into NO_SHARD (a world of one): {said} of {len(logged)}", flush=True)
    print(f"{'job':<22} {'split':<5} {'n':>4} {'max|dP|':>9} {'mean|P-.5|':>10}  test acc plain/FSDP", flush=True)
    for r in rows:
        figures = f"{r['n']:>4} {r['max_diff']:>9.2e} {r['moved']:>10.4f}  {r['acc'][0]:.4f}/{r['acc'][1]:.4f}"
        print(f"{r['job']:<22} {r['split']:<5} {figures}", flush=True)


def test_a_one_process_fsdp_job_trains_as_the_unsharded_one(tmp_path, w2s_cache):
    plain_recipe, fsdp_recipe = tmp_path / "plain.toml", tmp_path / "fsdp.toml"
    config = fsdp_config_file(tmp_path / "fsdp-config")
    plain_recipe.write_text(recipe_text(""))
    fsdp_recipe.write_text(recipe_text(f'fsdp = true\naccelerate_config = "{config}"\n'))
    deadline = time.monotonic() + RUN_TIMEOUT_S  # both runs at once: one supervisor each, on the one GPU
    runs = {name: start_run(tmp_path / name, tmp_path / f"{name}.toml") for name in ("plain", "fsdp")}
    ended = {name: finish(proc, tmp_path / name, tmp_path / f"{name}.toml", deadline) for name, proc in runs.items()}
    for name, outcome in ended.items():
        check_ran(name, outcome, tmp_path / name)
    seconds = {name: outcome[2] for name, outcome in ended.items()}
    plain, sharded = done_jobs(tmp_path / "plain"), done_jobs(tmp_path / "fsdp")
    assert set(plain) == set(sharded) and len(plain) == 3  # launch keys are no part of a job key
    for h in plain:
        check_plain(plain[h])
        check_sharded(sharded[h], config)
    rows = compare(plain, sharded)
    report(rows, seconds, sharded)
    worst = max(r["max_diff"] for r in rows)
    assert worst <= TOLERANCE, f"the FSDP run's predictions differ by up to {worst:.3g} (> {TOLERANCE}): {rows}"
    moved = min(r["moved"] for r in rows)
    assert moved > 10 * TOLERANCE, f"a job barely trained ({moved:.2g}), so agreeing proves little: {rows}"
