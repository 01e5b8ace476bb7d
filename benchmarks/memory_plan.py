"""The memory plan's estimate (issue 14) against the real trainer's peak GPU memory, side by side.

What: for each case, `w2s_core.spec.memory.estimate` of a job spec (the figure `w2s run --dry-run`
prints and `w2s run` refuses by, computed before anything starts) next to the peak
`torch.cuda.max_memory_allocated()` of the real trainer training that very job (`build_finetune`,
`prepare`, `Loop`, `train_loop`, driven as `benchmarks/trainer_speed_sides.py`'s w2s side drives
them), and their ratio measured / estimate.

How:
- models: random-init configs of `trainer_speed.MODELS` (gpt2-medium, gpt2-large, a Qwen2-0.5B-like
  one), built by `trainer_speed.make_model` into a local folder with its config.json: the estimate
  reads the sizes from that config.json (spec/shapes.py), the trainer loads the weights; no download.
- the job: `trainer_speed_sides.w2s_job`, with the train settings the registry gives the real model
  (minibatch_size, max_length, grad_checkpointing, dtype: what a recipe naming it gets), batch 32,
  one epoch of steps x 32 examples, and the case's changes (gradient checkpointing, LoRA, bfloat16
  weights + Adafactor). The estimate gets the same dict.
- the inputs: random token ids, every one `max_length` long, so each pass is minibatch_size x
  max_length tokens with no padding: the batch shape the estimate counts.
- each case in a fresh process whose peak is the whole job's (weights loading included; no
  `reset_peak_memory_stats`), so cases do not mix. Also printed: allocated after loading (against the
  estimate's weights), after training (weights + optimizer state: zero_grad frees the gradients) and
  the allocator's reserved peak (its rounding and fragmentation: the plan's USABLE margin).
Left out on both sides: the CUDA context (memory.CONTEXT_GIB; outside torch's allocator). Not run:
the job's final prediction pass (no_grad, after the gradients are freed: below the training peak).

CPU (`--device cpu`, the default without CUDA): one tiny case (gpt2-29m, float32, batch 8 of
minibatch 4 at 128 tokens, 1 step) exercises every step end to end; it prints the process's RSS
high-water, which is not comparable with the estimate (it holds Python, torch and the libraries).

Usage: python benchmarks/memory_plan.py [--device cuda|cpu] [--cases NAME,...] [--steps N]
       [--keep DIR] [--timeout SECONDS]
GPU: PYTHONPATH=. python benchmarks/memory_plan.py --device cuda --timeout 120: the six cases (their
estimates 13-27 GiB, so an 80 GB H100 fits them too) take about 2 minutes on one H200, 3 steps each,
most of it starting Python and building, saving and loading the models. CPU: the tiny case, ~20 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from trainer_speed import make_model, run_child, tokenizer  # noqa: E402
from trainer_speed_sides import trainer_loop, w2s_job  # noqa: E402

from w2s_core.spec.memory import GIB, estimate  # noqa: E402
from w2s_core.spec.registry import model_defaults  # noqa: E402
from w2s_core.spec.schema import MODEL_TRAIN_KEYS, TRAIN_DEFAULTS  # noqa: E402

BATCH = 32
WORDS = 20_000  # the synthetic tokenizer's words: gpt2-29m's ~10M embedding parameters, as in trainer_speed
# name: (trainer_speed.MODELS key, the registry name whose defaults the job gets, train changes, the
# strategy the estimate should take); the GPU ones in order of importance
CASES = {
    "gpt2-medium": ("gpt2-medium", "gpt2-medium", {}, "full"),
    "gpt2-large": ("gpt2-large", "gpt2-large", {}, "full"),
    "qwen2-0.5b": ("qwen2-0.5b", "Qwen/Qwen2-0.5B", {}, "full"),  # not in the registry: the generic defaults
    # one pass of 32 per step, so the checkpointed activations are large enough to see
    "gpt2-large-ckpt": ("gpt2-large", "gpt2-large", {"grad_checkpointing": True, "minibatch_size": 32}, "full"),
    "gpt2-large-lora": ("gpt2-large", "gpt2-large", {"lora": True}, "lora"),
    "gpt2-large-bf16-adafactor": (
        "gpt2-large",
        "gpt2-large",
        {"dtype": "bfloat16", "optimizer": "adafactor"},
        "full-bf16",
    ),
    "gpt2-29m-cpu": (
        "gpt2-29m",
        "gpt2-29m",
        {"batch_size": 8, "minibatch_size": 4, "max_length": 128, "dtype": "float32"},
        "full",
    ),
}
DEFAULT_CASES = {"cuda": [c for c in CASES if not c.endswith("-cpu")], "cpu": ["gpt2-29m-cpu"]}
PARTS = (("weights", "W"), ("gradients", "G"), ("optimizer", "O"), ("working copies", "C"), ("activations", "A"))


# --- the job and its inputs (pure: tests/test_memory_plan.py checks them) ----------------------------------


def case_job(work: Path, case: str) -> dict:
    """The job spec of `case` on the model in `work`/model: trainer_speed_sides.w2s_job with the registry's
    settings for the real model, batch 32, one epoch, and the case's changes."""
    _, registry_name, changes, _ = CASES[case]
    defaults = model_defaults(registry_name)
    job = w2s_job(work, BATCH, False)
    job["model"]["name"] = case
    registry = {k: defaults[k] for k in MODEL_TRAIN_KEYS if k in defaults and k not in ("epochs", "batch_size")}
    job["train"] = {**TRAIN_DEFAULTS, **job["train"], **registry, "epochs": 1, "batch_size": BATCH, **changes}
    return job


def case_inputs(job: dict, vocab: int, steps: int) -> tuple[list[list[int]], list[int]]:
    """(token ids, labels) of `steps` optimiser steps: every input `max_length` ids long (seeded), so every
    minibatch is minibatch_size x max_length tokens, unpadded."""
    train, rng = job["train"], random.Random(0)
    n = steps * train["batch_size"]
    ids = [[rng.randrange(2, vocab) for _ in range(train["max_length"])] for _ in range(n)]
    return ids, [rng.randint(0, 1) for _ in range(n)]


# --- the child: one case's training, in its own process ----------------------------------------------------


def allocated(device: str, peak: bool = False) -> float | None:
    import torch

    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return float(torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated())


def child(run_file: Path) -> dict:
    """Train the job in `run_file` as the trainer does; the process's peak memory and what it trained."""
    import resource

    import torch

    from w2s_core.training import loop as L

    run = json.loads(run_file.read_text())
    job, device = run["job"], run["device"]
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device here: run with --device cpu")
    torch.manual_seed(job["seed"])
    ids, ys = case_inputs(job, run["vocab"], run["steps"])
    loop = trainer_loop(job, ids, ys, device)  # the model loaded and prepared; no optimizer state yet
    loaded, setup = allocated(device), loop.setup
    t = time.perf_counter()
    L.train_loop(loop)
    after = allocated(device)
    out = {
        "steps": loop.step,
        "train_s": time.perf_counter() - t,
        "loaded": loaded,
        "after": after,
        "peak": allocated(device, peak=True),
        "reserved": float(torch.cuda.max_memory_reserved()) if device == "cuda" else None,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0,  # Linux: KiB
        "weights_dtype": str(setup.precision.weights).split(".")[-1],
        "autocast": str(setup.precision.autocast).split(".")[-1] if setup.precision.autocast else None,
        "trainable": sum(p.numel() for p in setup.module.parameters() if p.requires_grad),
    }
    return out


# --- the parent: models, estimates, a process per case, the table -----------------------------------------


def run_case(work: Path, case: str, job: dict, args, vocab: int) -> tuple[dict | None, str]:
    """(the child's result, "") or (None, why it failed): an OOM or error is reported, the next case runs."""
    run_file = work / f"{case}.run.json"
    run_file.write_text(json.dumps({"job": job, "device": args.device, "vocab": vocab, "steps": args.steps}))
    result, why = run_child([sys.executable, str(Path(__file__).resolve()), "--child", str(run_file)], args.timeout)
    if result is None and why.startswith("timed out"):
        why += " (raise --timeout, or pick fewer --cases)"
    elif result is None and "out of memory" in why.lower():
        why = "CUDA out of memory: " + why
    return result, why


def gib(value: float | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f}"


HEADER = (
    f"{'case':26} {'strategy':9} {'bs':>3} {'mb':>3} {'L':>5} {'est GiB':>8} "
    + " ".join(f"{short:>6}" for _, short in PARTS)
    + f" {'loaded':>7} {'after':>7} {'PEAK':>7} {'reserv':>7} {'peak/est':>8} {'s':>5}"
)


def row(case: str, job: dict, est, result: dict | None, seconds: float, device: str) -> str:
    train = job["train"]
    parts = " ".join(f"{gib(est.parts.get(name)) if name in est.parts else '-':>6}" for name, _ in PARTS)
    shape = f"{train['batch_size']:>3} {train['minibatch_size']:>3} {train['max_length']:>5}"
    head = f"{case:26} {est.strategy:9} {shape} {gib(est.total):>8} {parts}"
    if result is None:
        return f"{head} {'FAILED (below)':>42}"
    if device != "cuda":
        return f"{head} RSS peak {gib(result['rss'])} GiB: not comparable on CPU {seconds:>5.0f}"
    ratio = result["peak"] / est.total
    return (
        f"{head} {gib(result['loaded']):>7} {gib(result['after']):>7} {gib(result['peak']):>7} "
        f"{gib(result['reserved']):>7} {ratio:>8.2f} {seconds:>5.0f}"
    )


def ran(result: dict, est) -> str:
    """What the trainer ran against what the plan assumed: weights' dtype, autocast, trainable parameters."""
    autocast = f", {result['autocast']} autocast" if result["autocast"] else ""
    return (
        f"ran: {result['weights_dtype']} weights{autocast}, {result['trainable'] / 1e6:.1f}M trainable; "
        f"plan: {est.what}, {est.trainable / 1e6:.1f}M trainable, sized from the {est.source}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    cuda = _cuda_available()
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if cuda else "cpu")
    parser.add_argument("--cases", help=f"comma-separated, of: {', '.join(CASES)} (default: per device)")
    parser.add_argument("--steps", type=int, help="optimiser steps per case (default 3 on CUDA, 1 on CPU)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per case's process (default 300)")
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child)), flush=True)
        return
    if args.device == "cuda" and not cuda:
        sys.exit("--device cuda, but torch sees no CUDA device here: run with --device cpu")
    cases = args.cases.split(",") if args.cases else DEFAULT_CASES[args.device]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(unknown)}; pick from: {', '.join(CASES)}")
    args.steps = args.steps or (3 if args.device == "cuda" else 1)
    compare(cases, args)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def compare(cases: list[str], args) -> None:
    """Each case: its model (built once per architecture), its estimate, its process; a row as it ends."""
    import torch

    root = (args.keep or Path(tempfile.mkdtemp(prefix="w2s-memory-plan-"))).resolve()
    tok = tokenizer([" ".join(f"w{i}" for i in range(WORDS))])
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"device: {where}; torch {torch.__version__}; {args.steps} optimiser step(s) per case", flush=True)
    print(HEADER, flush=True)
    failures = []
    for case in cases:
        work = root / CASES[case][0]
        if not (work / "model" / "config.json").is_file():
            make_model(work / "model", CASES[case][0], tok, args.device)
            if args.device == "cuda":  # free the parent's copy (a model may hold reference cycles)
                gc.collect()
                torch.cuda.empty_cache()
        job = case_job(work, case)
        est = estimate(job)
        if est is None:
            sys.exit(f"{case}: the plan cannot size {work / 'model'} (no readable config.json there)")
        t = time.perf_counter()
        result, why = run_case(work, case, job, args, len(tok))
        print(row(case, job, est, result, time.perf_counter() - t, args.device), flush=True)
        if result is not None and result["steps"] != args.steps:
            why = f"trained {result['steps']} steps, not {args.steps}"
        print(f"    {why or ran(result, est)}", flush=True)
        if why:
            failures.append(f"{case}: {why}")
    print(
        "\nGiB; est: memory.estimate's total, its parts W weights, G gradients, O optimizer, C working copies, "
        "A activations; loaded: allocated after loading, after: after training (weights + optimizer state), "
        "PEAK: max_memory_allocated of the whole job's process, reserv: max_memory_reserved; "
        f"bs batch, mb minibatch, L tokens per input; s: seconds of the case's process. Work folder: {root}",
        flush=True,
    )
    for failure in failures:
        print(f"FAILED {failure[:300]}", flush=True)  # in full under its row


if __name__ == "__main__":
    main()
