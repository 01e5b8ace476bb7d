"""The sides of `benchmarks/trainer_speed.py`, each run in its own process: the reference loop and the w2s trainer.

`python benchmarks/trainer_speed_sides.py SIDE WORK_DIR DEVICE MINIBATCH REF_ATTENTION` trains one side on
the model and data `trainer_speed.py` prepared in WORK_DIR and prints one `RESULT {json}` line: the
timed loop's seconds, steps, padded positions, peak memory, non-embedding parameter count and (w2s
sides) the time spent building and writing events, the time and real tokens at the end of every
optimiser step (for the steady-state rate), and, with `W2S_BENCH_PROFILE=1` on CUDA, where the GPU
time of three late steps went (`profile_steps`). A w2s side's name is `w2s` plus its settings:
`+group` (`group_by_length`), `+compile` (`compile`), `-noevents` (events written nowhere),
`+nocudnn` (SDPA without its cuDNN backend, so flash or memory-efficient kernels; on an H200
cuDNN's attention took 1.1-2.7 ms of CPU per call, see the closing notes of issue 11),
`+nosync` (no loss read per step: an upper bound for a loop that never waits for the GPU between
steps; its "late" marks then time the CPU's issuing, not the GPU's work, so only its whole-loop
figure counts).
See trainer_speed.py's docstring.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def non_embedding_params(module) -> int:
    import torch

    embedded = sum(p.numel() for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    return sum(p.numel() for p in module.parameters()) - embedded


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_side(work: Path, device: str, attention: str) -> dict:
    import torch
    from reference_loop import TransformerWithHead, train_reference
    from transformers import AutoModel

    data = json.loads((work / "data.json").read_text())
    dev = torch.device(device)
    body = AutoModel.from_pretrained(work / "model", dtype=torch.float32, attn_implementation=attention)
    model = TransformerWithHead(body, body.config.hidden_size).to(dev)
    cuda = device == "cuda"
    longest = max(data["ids"], key=len)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):  # warm-up: kernels, allocator
        model(torch.tensor([longest], device=dev)).float().sum().backward()
    model.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    soft = [[1.0 - y, float(y)] for y in data["labels"]]
    out = train_reference(model, data["ids"], soft, dev, autocast=cuda)
    sync(device)
    return {**out, "seconds": time.perf_counter() - t, "minibatch": 1, "n_params": non_embedding_params(body)}


def w2s_job(work: Path, minibatch: int, group: bool, compiled: bool = False) -> dict:
    train = {
        "mode": "finetune",
        "epochs": 1,
        "lr": 5e-5,
        "batch_size": 32,
        "minibatch_size": minibatch,
        "max_length": 1024,  # trainer_speed.MAX_LENGTH: no input is cut
        "schedule": "cosine",
        "lr_warmup_frac": 0.0,
        "weight_decay": 0.0,
        "lora": False,
        "eval_every": 0,
        "group_by_length": group,
        "compile": compiled,
    }
    model = {"name": "bench", "path": str(work / "model")}
    return {"model": model, "data": {}, "train": train, "seed": 0, "loss": {"name": "xent", "params": {}}}


def trainer_loop(job: dict, ids: list[list[int]], labels: list[int], device: str, events=None):
    """The real trainer's Loop over `ids`, built as `loop.train_job` builds it (less data splits and
    checkpoints): accelerate, the model (`build_finetune`), `prepare`, xent, float16's loss scaler.
    benchmarks/memory_plan.py trains through it too."""
    import torch
    from accelerate import Accelerator

    from w2s_core.jobdir import EventWriter
    from w2s_core.training import loop as L
    from w2s_core.training.losses import make_loss
    from w2s_core.training.precision import grad_scaler
    from w2s_core.training.setup import build_finetune
    from w2s_core.training.world import step_shape

    acc = Accelerator(cpu=device == "cpu")
    acc.gradient_accumulation_steps = step_shape(job["train"], acc.num_processes)[1]
    setup = build_finetune(job, {"train": ["w0"]}, acc.device, 2)
    setup.inputs = {"train": ids}
    module, opt = L.prepare(acc, setup, job["train"])
    return L.Loop(
        acc=acc, setup=setup, module=module, opt=opt, loss_fn=make_loss("xent", {}, 2), batch_target=None,
        labels=torch.tensor([[1.0 - y, float(y)] for y in labels]), job=job, test_labels=[],
        events=EventWriter(None) if events is None else events, n_classes=2, scaler=grad_scaler(acc, setup.precision),
    )  # fmt: skip


def w2s_side(work: Path, device: str, side: str, minibatch: int) -> dict:
    import torch

    from w2s_core.jobdir import EventWriter
    from w2s_core.training import loop as L
    from w2s_core.training.evaluate import forward

    data = json.loads((work / "data.json").read_text())
    job = w2s_job(work, minibatch, "+group" in side, "+compile" in side)
    if "+nocudnn" in side:
        torch.backends.cuda.enable_cudnn_sdp(False)
    events = EventWriter(work / f"{side}.events.jsonl" if side != "w2s-noevents" else None)
    loop = trainer_loop(job, data["ids"], data["labels"], device, events)  # the very ids the reference reads
    setup, module, opt = loop.setup, loop.module, loop.opt
    counts = {"padded_tokens": 0, "tokens": 0, "event_s": 0.0, "emit_s": 0.0, "marks": []}
    warm = sorted(data["ids"], key=len)[-minibatch:]  # warm-up: kernels, allocator
    forward(setup, module, warm).float().sum().backward()
    module.zero_grad(set_to_none=True)
    inner_batch, inner_event = setup.batch, L.progress_event

    def batch(items):
        counts["padded_tokens"] += len(items) * max(map(len, items))
        counts["tokens"] += sum(map(len, items))
        return inner_batch(items)

    steps = math.ceil(len(data["ids"]) / job["train"]["batch_size"])
    profiler = StepProfiler(device, steps) if os.environ.get("W2S_BENCH_PROFILE") else None

    def progress_event(*args):
        t = time.perf_counter()
        if "+nosync" in side:  # what a loop that never waits for the GPU between steps would reach
            args[0].window = []
            event = [{"step": args[0].step}]
        else:
            event = inner_event(*args)  # reads a step's loss (on a GPU the step before's: progress.py)
        counts["event_s"] += time.perf_counter() - t
        counts["marks"].append([time.perf_counter() - t0, counts["tokens"]])
        if profiler:
            profiler.after_step(args[0].step)
        return event

    setup.batch, L.progress_event = batch, progress_event
    inner_emit = events.emit

    def emit(event):
        t = time.perf_counter()
        inner_emit(event)
        counts["emit_s"] += time.perf_counter() - t

    events.emit = emit
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t0 = time.perf_counter()
    L.train_loop(loop)
    sync(device)
    seconds = time.perf_counter() - t0
    events.close()
    fused = bool(opt.optimizer.defaults.get("fused")) if hasattr(opt, "optimizer") else False
    return {
        **counts,
        "seconds": seconds,
        "steps": loop.step,
        "minibatch": minibatch,
        "fused": fused,
        "n_params": non_embedding_params(setup.module),
        "steady_end": (profiler.start if profiler else loop.step) - 1,  # the last mark before profiling
        **({"profile": profiler.summary} if profiler and profiler.summary else {}),
    }


# kernel names by what they compute: cuBLAS/CUTLASS matrix products, fused attention, the optimizer
KINDS = (
    ("matmul", re.compile(r"gemm|cutlass|xmma|nvjet|wgmma|cublas|splitk", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|efficient", re.I)),
    ("optimizer", re.compile(r"adam|multi_tensor|foreach", re.I)),
    ("copy", re.compile(r"memcpy|memset|copy", re.I)),
)


class StepProfiler:
    """torch.profiler over three optimiser steps near the end (after the steady-state window's middle).

    Its summary: the steps' wall time, the GPU's busy time (the union of kernel intervals) and each
    kind of kernel's share of it, and the ten kernels that took longest.
    """

    def __init__(self, device: str, steps: int):
        self.start = max(1, steps - 4)  # profile steps start+1 .. start+3
        self.device, self.prof, self.summary, self.t = device, None, None, 0.0

    def after_step(self, step: int) -> None:
        import torch

        if self.device != "cuda":
            return
        if step == self.start:
            acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            self.prof = torch.profiler.profile(activities=acts)
            self.prof.__enter__()
            self.t = time.perf_counter()
        elif self.prof is not None and step == self.start + 3:
            wall = time.perf_counter() - self.t
            self.prof.__exit__(None, None, None)
            self.summary = kernel_summary(self.prof, wall)
            self.prof = None


def kernel_summary(prof, wall: float) -> dict:
    from torch.autograd import DeviceType

    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy, end = 0.0, -1.0
    for a, b in spans:  # union of intervals, microseconds
        if b > end:
            busy += b - max(a, end)
            end = b
    by_kind: dict[str, float] = {}
    by_name: dict[str, list] = {}
    for e in kernels:
        us = e.time_range.end - e.time_range.start
        kind = next((k for k, pat in KINDS if pat.search(e.name)), "elementwise/other")
        by_kind[kind] = by_kind.get(kind, 0.0) + us
        entry = by_name.setdefault(e.name[:90], [0.0, 0])
        entry[0] += us
        entry[1] += 1
    total = sum(by_kind.values()) or 1.0
    top = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:10]
    ops = prof.key_averages()
    cpu = sorted(ops, key=lambda a: -a.self_cpu_time_total)[:12]
    return {
        "wall_ms": wall * 1e3,
        "busy_ms": busy / 1e3,
        "kinds": {k: v / total for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "kernels": len(kernels),
        "top": [[name, us / 1e3, n] for name, (us, n) in top],
        "cpu_ms": sum(a.self_cpu_time_total for a in ops) / 1e3,
        "cpu_top": [[a.key[:90], a.self_cpu_time_total / 1e3, a.count] for a in cpu],
    }


def main() -> None:
    side, work, device, minibatch, attention = sys.argv[1:6]
    if side == "reference":
        out = reference_side(Path(work), device, attention)
    else:
        out = w2s_side(Path(work), device, side, int(minibatch))
    out["peak_mb"] = peak_memory_mb(device)
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
