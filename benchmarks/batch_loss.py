"""Does a transfer's result depend on the minibatch? logconf (a batch-level loss) next to xent.

Trains one weak GT job (tiny GPT-2), then the same transfer to a tiny BERT with xent and with
logconf at minibatch 1, 4 and 32 (batch 32), each in a fresh process as the supervisor runs jobs.
Prints, per loss and minibatch: the largest difference of any test probability from the
minibatch = batch run, the training time (result.json's train_seconds: the loop and the final
predictions, without process start-up) and its ratio to minibatch = batch, and the process's peak RSS.
logconf's extra cost is its no-grad pass over the batch before each optimiser step with more than
one minibatch (compare its time with xent's at the same minibatch). The row "32, 2 thr" repeats
minibatch = batch with two threads, which changes only the order of float sums: differences at
that level are float noise that training amplifies, not a dependence on the minibatch (at larger
--hidden and this lr, training is chaotic and that floor rises to ~0.1 for either loss).

Usage: python benchmarks/batch_loss.py [--minibatches 1,4,32] [--epochs 2] [--hidden 32 --layers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from w2s_core.jobdir import JobDir
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32
RECIPE = """
[data]
name = "synthetic"
n_train = 512
n_test = 256

[train]
epochs = {epochs}
lr = 0.003
batch_size = 32
minibatch_size = 32
max_length = 32

[[models]]
name = "weak"
path = "tiny-random-gpt2"
tiny = {{ hidden_size = 16, num_layers = 1 }}

[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = {{ hidden_size = {hidden}, num_layers = {layers}, num_heads = 4 }}

[[transfer]]
loss = "xent"

[[transfer]]
loss = "logconf"
"""

# Runs the job in this process and appends its peak RSS (KiB on Linux) to the job folder.
CHILD = """
import resource, sys
from pathlib import Path
from w2s_core.training.loop import run
run(Path(sys.argv[1]))
Path(sys.argv[1], "peak_rss_kib").write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def train(job_dir: Path, spec: dict, threads: int = 1) -> tuple[list[float], float, int]:
    """(test probabilities, training seconds, peak RSS in KiB) of one job in a fresh process."""
    JobDir(job_dir).write_spec(spec)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(job_dir)], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training {job_dir.name} failed:\n{done.stderr[-3000:]}")
    probs = JobDir(job_dir).read_predictions()["test"]["probs"]
    seconds = JobDir(job_dir).read_result()["train_seconds"]
    return probs, seconds, int((job_dir / "peak_rss_kib").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minibatches", default="1,4,32", help="comma-separated minibatch sizes (divisors of 32)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32, help="the strong tiny BERT's hidden size")
    parser.add_argument("--layers", type=int, default=2, help="the strong tiny BERT's layers")
    parser.add_argument("--keep", type=Path, help="write the job folders here instead of a temporary dir")
    args = parser.parse_args()
    sizes = sorted({int(x) for x in args.minibatches.split(",")} | {BATCH})
    root = args.keep or Path(tempfile.mkdtemp(prefix="w2s-batch-loss-"))
    text = RECIPE.format(epochs=args.epochs, hidden=args.hidden, layers=args.layers)
    jobs = build_plan(parse_recipe(tomllib.loads(text), Path("batch_loss.toml"), text)).jobs
    weak = next(j for j in jobs if j.kind == "gt" and j.model == "weak")
    train(root / "weak", weak.spec)
    print(f"{'loss':8} {'minibatch':>9} {'max |dp| vs mb=32':>18} {'train s':>8} {'x mb=32':>8} {'peak RSS MiB':>13}")
    for job in (j for j in jobs if j.kind == "transfer"):
        runs = {}
        for mb in sizes:
            spec = {
                **job.spec,
                "train": {**job.spec["train"], "minibatch_size": mb},
                "upstream_dir": str(root / "weak"),
            }
            runs[mb] = train(root / f"{job.method}-mb{mb}", spec)
            if mb == BATCH:  # the same run with another float summation order: the noise floor
                runs["floor"] = train(root / f"{job.method}-mb{mb}-2threads", spec, threads=2)
        ref_probs, ref_seconds, _ = runs[BATCH]
        for mb, (probs, seconds, rss) in runs.items():
            diff = max(abs(a - b) for a, b in zip(probs, ref_probs))
            label = f"{BATCH}, 2 thr" if mb == "floor" else mb
            print(
                f"{job.method:8} {label:>9} {diff:>18.2e} {seconds:>8.1f} "
                f"{seconds / ref_seconds:>8.2f} {rss / 1024:>13.0f}"
            )
    print(f"job folders: {root}")


if __name__ == "__main__":
    main()
