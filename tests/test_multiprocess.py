"""Multi-process training proven (issue 11, item 5): one job.json, one process or two, the same predictions.

The command that really gives two processes on a CPU (env.json: `num_processes` 2, MULTI_CPU, gloo):

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no -m w2s_core.training JOB_DIR

(`python -m accelerate.commands.launch ...` here, as the supervisor runs it; a job of one process runs no
launcher, `python -m w2s_core.training JOB_DIR`, launch_config.direct). What does not, checked
with accelerate 1.15: `accelerate launch --cpu --num_processes 2` (and a MULTI_CPU accelerate config)
starts ONE process, since accelerate's simple launcher fans a CPU job out only through mpirun; and
`--multi_gpu --num_processes 2` without ACCELERATE_USE_CPU=1 on a machine without CUDA starts two
workers that each believe they are alone (DistributedType.NO), so each would train the whole job
and write its folder; the trainer now refuses that launch (`w2s_core.training.world.check_world`).
`--multi_gpu` is what selects accelerate's torchrun launcher; ACCELERATE_USE_CPU=1 makes the
workers join one gloo group on the CPU.

What is checked:
- The same logconf transfer job (tiny-random-bert, hidden 64, on synthetic data; 48 optimiser steps
  of batch 16, minibatch 8) trained by one process and by two agrees: test-set and predict-split
  P(class 1) within TOLERANCE, and equal test accuracy. With one process a step is two minibatches
  of 8 (the batch-level target comes from the no-grad pass); with two, each process takes 8 of the
  step's 16 examples in one pass (the target comes from both processes' gradient-pass logits,
  summed into one vector), so logconf's class share and hardening threshold are the same in both
  runs only if `batch_targets` reduces over processes (`test_training.py` checks the other path:
  two processes, two passes of 4 each, the no-grad pass reduced over processes).
- Only the main process writes the job folder: events.jsonl has each step once (as the one-process
  run's), and env/predictions/result are written once, by rank 0 (counted by a sitecustomize hook).
- `batch_targets` itself, with a fake two-process accelerator (two threads whose `reduce` sums):
  each process's rows of the target equal the single-process target's rows for the same batch, and
  differ from a target taken over the process's own rows (so the check can fail).
- One process started directly (the supervisor's one-process command) trains exactly as one process
  under `accelerate launch --num_processes 1 ...` (what w2s ran before): the trainer sets the
  launcher's environment itself, so predictions, results and events are equal, bit for bit, but for
  timings; env.json agrees.
- `world.step_shape`: `batch_size` is the effective batch whatever the process count (before issue
  11 a step under P processes took batch_size x P examples, and this job's predictions differed by
  0.38 between one process and two).

Tolerance: both runs do the same arithmetic but for float summation order (DDP averages two
half-batch gradients where one process averages a batch; each shard is padded to its own longest
input); here that moves P(class 1) by at most 6e-8 over the 48 Adam steps, and the test accuracy not
at all. TOLERANCE = 1e-5 leaves room for other CPUs' kernels, while any real difference (another
effective batch, data order, or a per-process logconf target) moves them by more than 1e-2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

from w2s_core.data import make_splits
from w2s_core.jobdir import Event, JobDir, write_json
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.supervision import launch_config

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-5
RECIPE = """
seeds = [0]
[data]
name = "synthetic"
n_train = 256
n_test = 128

[train]
epochs = 6
lr = 0.001
batch_size = 16
minibatch_size = 8
max_length = 32
eval_every = 16

[[models]]
name = "weak"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16, num_layers = 1 }

[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = { hidden_size = 64, num_layers = 2 }

[[transfer]]
loss = "logconf"
warmup_frac = 0.1
"""
LAUNCH = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
# Counts the job-folder writes of each process (RANK), outside the job folder so it stays as the trainer left it.
HOOK = """
import os
from w2s_core import jobdir

def _count(name, real):
    def counted(self, *args, **kwargs):
        with open(os.environ["W2S_TEST_WRITES"], "a") as f:
            f.write(f"{os.environ.get('RANK', '0')} {name}\\n")
        return real(self, *args, **kwargs)
    return counted

jobdir.JobDir.write_outputs = _count("outputs", jobdir.JobDir.write_outputs)
_init = jobdir.EventWriter.__init__
def _events(self, path):
    if path is not None:
        with open(os.environ["W2S_TEST_WRITES"], "a") as f:
            f.write(f"{os.environ.get('RANK', '0')} events\\n")
    _init(self, path)
jobdir.EventWriter.__init__ = _events
"""


def logconf_spec(upstream: Path) -> dict:
    """The recipe's logconf transfer job, reading its weak labels from `upstream`."""
    plan = build_plan(parse_recipe(tomllib.loads(RECIPE), Path("test.toml"), RECIPE))
    job = next(j for j in plan.jobs if j.kind == "transfer")
    return {**job.spec, "upstream_dir": str(upstream)}


def write_weak_labels(folder: Path, spec: dict) -> None:
    """A weak supervisor's predictions.json without training one: soft labels right 75% of the time.

    Mixed confidence, so logconf's hardening (which examples the batch's share marks as class 1)
    has work to do; fixed, so both runs read the same labels.
    """
    splits = make_splits(spec["data"], spec["seed"])
    gen = torch.Generator().manual_seed(1)
    out = {}
    for name in ("B", "test"):
        y = torch.tensor(splits[name].labels, dtype=torch.float32)
        wrong = torch.rand(len(y), generator=gen) < 0.25
        sure = 0.55 + 0.4 * torch.rand(len(y), generator=gen)  # P(the label it believes), 0.55..0.95
        believed = torch.where(wrong, 1 - y, y)
        out[name] = {"probs": torch.where(believed == 1, sure, 1 - sure).tolist(), "labels": splits[name].labels}
    folder.mkdir(parents=True)
    write_json(JobDir(folder).predictions, out)


def launch(job_dir: Path, spec: dict, processes: int | str, hooks: Path, cache: Path) -> list[str]:
    """Train `spec` in `job_dir` with `processes` processes through accelerate launch, or with one process
    started directly (`processes` = "direct": the supervisor's command for it); the hook's write log."""
    JobDir(job_dir).write_spec(spec)
    writes = job_dir.parent / f"{job_dir.name}.writes"
    env = dict(
        os.environ,
        PYTHONPATH=f"{hooks}{os.pathsep}{ROOT}",
        W2S_TEST_WRITES=str(writes),
        W2S_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    if processes == 2:
        env["ACCELERATE_USE_CPU"] = "1"  # without it, workers on a CUDA-less machine never join a group
        launcher = ["--multi_gpu", "--num_processes", str(processes)]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher, *LAUNCH, "-m", "w2s_core.training"]
        cmd = [*cmd, str(job_dir)]
    else:  # one process: OMP_NUM_THREADS unset, as the supervisor leaves it; the launcher's rule makes it 1
        del env["OMP_NUM_THREADS"]
        cmd = launch_config.simple_launch(job_dir)  # what a direct job stands for: w2s's launch before
        assert cmd[3:5] == ["--num_processes", "1"] and cmd[5:11] == LAUNCH
        if processes == "direct":
            cmd = launch_config.command(job_dir, None)
            assert cmd == [sys.executable, "-m", "w2s_core.training", str(job_dir)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return writes.read_text().split("\n")[:-1] if writes.exists() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{processes: (job folder, write log)} of the same logconf job, trained by one process and by two under
    accelerate launch, and by one process started directly ("direct")."""
    root = tmp_path_factory.mktemp("ddp")
    hooks = root / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK)
    spec = logconf_spec(root / "weak")
    write_weak_labels(root / "weak", spec)
    cache = root / "cache"
    return {p: (root / f"p{p}", launch(root / f"p{p}", spec, p, hooks, cache)) for p in (1, 2, "direct")}


def test_two_processes_really_ran(runs):
    env = JobDir(runs[2][0]).read_env()
    assert env["num_processes"] == 2
    assert env["distributed_type"] == "DistributedType.MULTI_CPU"
    assert JobDir(runs[1][0]).read_env()["num_processes"] == 1


def test_two_processes_predict_as_one(runs):
    one, two = (JobDir(runs[p][0]).read_predictions() for p in (1, 2))
    assert one.keys() == two.keys() == {"test", "A"}
    for split in one:
        assert one[split]["labels"] == two[split]["labels"]
        diff = max(abs(a - b) for a, b in zip(one[split]["probs"], two[split]["probs"], strict=True))
        assert diff < TOLERANCE, (split, diff)
    results = [JobDir(runs[p][0]).read_result() for p in (1, 2)]
    assert results[0]["steps"] == results[1]["steps"] == 48  # 128 examples x 6 epochs / batch 16
    assert results[0]["test_acc"] == results[1]["test_acc"]
    # the job learned something (chance is 0.5), so agreeing is no accident of two untrained models
    assert results[0]["test_acc"] > 0.55
    assert max(one["test"]["probs"]) - min(one["test"]["probs"]) > 0.1


def test_one_process_started_directly_trains_as_under_accelerate_launch(runs):
    """The supervisor's one-process command, no launcher, against `accelerate launch --num_processes 1`:
    the same job to the bit (the trainer gives itself the launcher's environment: torch's one thread)."""
    launched, direct = JobDir(runs[1][0]), JobDir(runs["direct"][0])
    assert direct.read_predictions() == launched.read_predictions()  # exactly, every split

    def timeless(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("train_seconds", "examples_per_s")} for r in rows]

    assert timeless([direct.read_result()]) == timeless([launched.read_result()])
    events = [[json.loads(x) for x in folder.events.read_text().splitlines()] for folder in (direct, launched)]
    assert timeless(events[0]) == timeless(events[1]) and len(events[0]) > 48
    assert direct.read_env() == launched.read_env() and direct.read_env()["num_processes"] == 1
    assert Counter(runs["direct"][1]) == Counter(runs[1][1])  # the same job-folder writes


def test_only_the_main_process_writes_the_job_folder(runs):
    (dir1, writes1), (dir2, writes2) = runs[1], runs[2]
    assert Counter(writes2) == Counter({"0 outputs": 1, "0 events": 1}) == Counter(writes1)
    assert sorted(p.name for p in dir2.iterdir()) == sorted(p.name for p in dir1.iterdir())
    steps = [json.loads(line)[Event.STEP] for line in JobDir(dir2).events.read_text().splitlines()]
    steps1 = [json.loads(line)[Event.STEP] for line in JobDir(dir1).events.read_text().splitlines()]
    assert steps == steps1 == [*range(1, 49), 48]  # each step once, then the final line


# --- batch_targets over a fake two-process accelerator ------------------------------------------


class FakeAccelerator:
    """Process `index` of `world`, threads standing in for processes: `reduce` sums every process's tensor."""

    device = torch.device("cpu")

    def __init__(self, index: int, world: int, barrier: threading.Barrier, slots: list) -> None:
        self.process_index, self.num_processes, self.barrier, self.slots = index, world, barrier, slots

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        assert reduction == "sum"
        self.slots[self.process_index] = tensor.clone()
        self.barrier.wait()
        total = sum(self.slots)
        self.barrier.wait()  # everyone has read the slots before any process writes the next round
        return total


def test_batch_targets_are_taken_over_the_global_batch():
    from types import SimpleNamespace

    from w2s_core.training.loop import batch_targets, shard
    from w2s_core.training.losses import make_batch_target

    group = [[3, 0, 7, 12, 9], [1, 15, 4, 2, 11, 6]]  # a step of two minibatches of different sizes
    first = {i for chunk in group for i in chunk[0::2]}  # process 0's rows
    # the weak labels say class 1 on process 0's rows and class 0 on process 1's, while the student is
    # most confident in class 1 on process 1's rows: a per-process share and rank would mark most of
    # process 0's rows as class 1, the global ones (share 0.54 of 11) mark process 1's 5 rows and 1 more
    gen = torch.Generator().manual_seed(0)
    w1 = torch.tensor([0.9 if i in first else 0.1 for i in range(16)])
    labels = torch.stack([1 - w1, w1], dim=1)
    p1 = torch.rand(16, generator=gen) * 0.5 + torch.tensor([0.0 if i in first else 0.5 for i in range(16)])
    target_fn = make_batch_target("logconf", {"alpha": 0.5, "warmup_frac": 0.1}, 2)

    def loop(acc) -> SimpleNamespace:
        return SimpleNamespace(acc=acc, labels=labels, batch_target=target_fn)

    def probs(acc) -> list[torch.Tensor]:  # what this process's passes would give: its rows only
        return [p1[shard(acc, chunk)] for chunk in group]

    one = FakeAccelerator(0, 1, threading.Barrier(1), [None])
    want = batch_targets(loop(one), group, 0.5, probs(one))  # the single-process target, per minibatch

    world, barrier, slots, got = 2, threading.Barrier(2), [None, None], {}

    def process(rank: int) -> None:
        acc = FakeAccelerator(rank, world, barrier, slots)
        got[rank] = batch_targets(loop(acc), group, 0.5, probs(acc))

    threads = [threading.Thread(target=process, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for k, chunk in enumerate(group):
        for rank in range(world):
            rows = [i for i, _ in enumerate(chunk)][rank::world]
            assert torch.equal(got[rank][k], want[k][rows]), (k, rank)

    # a process taking the target over its own rows alone would get another one: the check can fail
    mine = [i for chunk in group for i in shard(FakeAccelerator(0, 2, barrier, slots), chunk)]
    local = target_fn(p1[mine], labels[mine], 0.5)
    global_rows = torch.cat([got[0][k] for k in range(len(group))])
    assert not torch.equal(local, global_rows)


# --- the step's shape and the launch check ------------------------------------------------------


def test_every_process_count_steps_on_the_same_batch():
    from w2s_core.training.world import step_shape

    for batch in (1, 2, 6, 8, 16, 24, 32, 96):
        for mini in (m for m in (1, 2, 3, 4, 8, 16, 32) if batch % m == 0):
            one = step_shape({"batch_size": batch, "minibatch_size": mini}, 1)
            assert one == (mini, batch // mini)  # one process: as before multi-process training was proven
            for processes in (2, 3, 4, 8):
                size, accum = step_shape({"batch_size": batch, "minibatch_size": mini}, processes)
                assert size * accum == batch, (batch, mini, processes)
                assert -(-size // processes) <= mini, (batch, mini, processes)  # no process beyond its minibatch


def test_processes_that_never_joined_one_group_are_refused(monkeypatch):
    """`--multi_gpu --num_processes 2` without ACCELERATE_USE_CPU=1 on a CPU: two workers each alone."""
    from types import SimpleNamespace

    from w2s_core.errors import W2SError
    from w2s_core.training.world import check_world

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(W2SError, match="started 2 processes but accelerate sees 1"):
        check_world(SimpleNamespace(num_processes=1))
    check_world(SimpleNamespace(num_processes=2))
    monkeypatch.delenv("WORLD_SIZE")
    check_world(SimpleNamespace(num_processes=1))


# --- a per-example loss (xent) over uneven shards (issue 14) --------------------------------------

# 35 examples per half: each epoch's minibatches of 16 end on one of 3, which two processes split 2 and 1.
# The pass is the same for one process and two (minibatch_size = batch_size), so the steps are too.
XENT_RECIPE = (
    RECIPE.replace("n_train = 256", "n_train = 70")
    .replace("minibatch_size = 8", "minibatch_size = 16")
    .replace('loss = "logconf"\nwarmup_frac = 0.1', 'loss = "xent"')
    .replace("lr = 0.001", "lr = 0.01")
    .replace("epochs = 6", "epochs = 3")
)


def test_xent_two_processes_match_one_when_an_epoch_ends_on_an_uneven_minibatch(tmp_path):
    """Before issue 14 the process holding 1 of a minibatch's 3 examples weighed it as much as the other
    process's 2 together (a mean per process, then over processes): the predictions moved by 0.017 here."""
    plan = build_plan(parse_recipe(tomllib.loads(XENT_RECIPE), Path("test.toml"), XENT_RECIPE))
    job = next(j for j in plan.jobs if j.kind == "transfer")
    spec = {**job.spec, "upstream_dir": str(tmp_path / "weak")}
    assert spec["loss"]["name"] == "xent"
    write_weak_labels(tmp_path / "weak", spec)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for p in (1, 2):
        launch(tmp_path / f"p{p}", spec, p, hooks, tmp_path / "cache")
    one, two = (JobDir(tmp_path / f"p{p}").read_predictions() for p in (1, 2))
    assert JobDir(tmp_path / "p2").read_env()["num_processes"] == 2
    for split in one:
        diff = max(abs(a - b) for a, b in zip(one[split]["probs"], two[split]["probs"], strict=True))
        assert diff < TOLERANCE, (split, diff)
    assert JobDir(tmp_path / "p1").read_result()["steps"] == JobDir(tmp_path / "p2").read_result()["steps"] == 9
    assert max(one["test"]["probs"]) - min(one["test"]["probs"]) > 0.05  # it trained
