"""The sides of `benchmarks/trainer_speed.py`, each run in its own process: the reference loop and the w2s trainer.

`python benchmarks/trainer_speed_sides.py SIDE WORK_DIR DEVICE MINIBATCH REF_ATTENTION` trains one side on
the model and data `trainer_speed.py` prepared in WORK_DIR and prints one `RESULT {json}` line: the
timed loop's seconds, steps, padded positions, peak memory, non-embedding parameter count and (w2s
sides) the time spent building and writing events. See trainer_speed.py's docstring.
"""

from __future__ import annotations

import json
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


def w2s_job(work: Path, minibatch: int, group: bool) -> dict:
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
    }
    model = {"name": "bench", "path": str(work / "model")}
    return {"model": model, "data": {}, "train": train, "seed": 0, "loss": {"name": "xent", "params": {}}}


def w2s_side(work: Path, device: str, side: str, minibatch: int) -> dict:
    import torch
    from accelerate import Accelerator

    from w2s_core.jobdir import EventWriter
    from w2s_core.training import loop as L
    from w2s_core.training.evaluate import forward
    from w2s_core.training.losses import make_loss
    from w2s_core.training.setup import build_finetune
    from w2s_core.training.world import step_shape

    data = json.loads((work / "data.json").read_text())
    job = w2s_job(work, minibatch, side == "w2s+group")
    acc = Accelerator(cpu=device == "cpu")
    acc.gradient_accumulation_steps = step_shape(job["train"], acc.num_processes)[1]
    setup = build_finetune(job, {"train": data["texts"][:1]}, acc.device, 2)
    setup.inputs = {"train": data["ids"]}  # the very ids the reference side reads
    module, opt = L.prepare(acc, setup, job["train"])
    counts = {"padded_tokens": 0, "event_s": 0.0, "emit_s": 0.0}
    warm = sorted(data["ids"], key=len)[-minibatch:]  # warm-up: kernels, allocator
    forward(setup, module, warm).float().sum().backward()
    module.zero_grad(set_to_none=True)
    inner_batch, inner_event = setup.batch, L.progress_event

    def batch(items):
        counts["padded_tokens"] += len(items) * max(map(len, items))
        return inner_batch(items)

    def progress_event(*args):
        t = time.perf_counter()
        event = inner_event(*args)
        counts["event_s"] += time.perf_counter() - t
        return event

    setup.batch, L.progress_event = batch, progress_event
    events = EventWriter(work / f"{side}.events.jsonl" if side != "w2s-noevents" else None)
    inner_emit = events.emit

    def emit(event):
        t = time.perf_counter()
        inner_emit(event)
        counts["emit_s"] += time.perf_counter() - t

    events.emit = emit
    labels = torch.tensor([[1.0 - y, float(y)] for y in data["labels"]])
    loop = L.Loop(
        acc=acc, setup=setup, module=module, opt=opt, loss_fn=make_loss("xent", {}, 2), batch_target=None,
        labels=labels, job=job, test_labels=[], events=events, n_classes=2,
    )  # fmt: skip
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    L.train_loop(loop)
    sync(device)
    seconds = time.perf_counter() - t
    events.close()
    fused = bool(opt.optimizer.defaults.get("fused")) if hasattr(opt, "optimizer") else False
    return {
        **counts,
        "seconds": seconds,
        "steps": loop.step,
        "minibatch": minibatch,
        "fused": fused,
        "n_params": non_embedding_params(setup.module),
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
