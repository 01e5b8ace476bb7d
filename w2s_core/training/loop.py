"""One job, one process: `accelerate launch -m w2s_core.training JOB_DIR`.

Reads JOB_DIR/job.json, trains, appends events to JOB_DIR/events.jsonl, writes
JOB_DIR/predictions.json and, last of all, JOB_DIR/result.json (its presence means success).
The same code runs on a CPU, one GPU, or several under DDP/FSDP from an accelerate config.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from w2s_core.analysis import stats as metrics
from w2s_core.data import make_splits
from w2s_core.errors import W2SError
from w2s_core.training.losses import loss_alpha, make_loss
from w2s_core.training.models import cached_features, collate, encode, load_classifier, pick_dtype


def write_json(path: Path, obj) -> None:
    """Write atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def training_labels(job: dict, split, upstream: dict | None) -> torch.Tensor:
    """Soft labels [N,2] for the training split: one-hot GT, or the upstream job's predictions."""
    if upstream is None:
        p = torch.tensor(split.labels, dtype=torch.float32)
    else:
        probs = upstream[job["labels"]["split"]]["probs"]
        if len(probs) != len(split.labels):
            raise W2SError(f"upstream labels have {len(probs)} rows but split {job['train_split']} has "
                           f"{len(split.labels)}: the upstream job {job['labels']['from'][:10]} is stale")
        p = torch.tensor(probs, dtype=torch.float32)
    return torch.stack([1 - p, p], dim=1)


@dataclass
class Setup:
    """What the loop needs: the module to train, how to batch its inputs, the inputs per split."""

    module: torch.nn.Module
    batch: Callable[[list], tuple]  # items -> positional args of module
    inputs: dict[str, list]  # "train" / "test" / "predict" -> token ids or frozen features
    device: torch.device
    autocast: bool = False


def build(job: dict, splits: dict, device: torch.device) -> Setup:
    spec, train = job["model"], job["train"]
    texts = {"train": splits[job["train_split"]].texts, "test": splits["test"].texts}
    if job["predict_split"]:
        texts["predict"] = splits[job["predict_split"]].texts
    if train["mode"] == "probe":
        # one cache entry per model for all of A, B and test: every job (and, with a fixed train
        # pool, every seed) on this model loads it instead of running the backbone again
        pool = sorted({t for split in ("A", "B", "test") for t in splits[split].texts})
        table = cached_features(spec, pool, max_length=train["max_length"],
                                batch_size=max(train["minibatch_size"], 32), device=device)
        row = {t: i for i, t in enumerate(pool)}
        feats = {n: table[[row[x] for x in t]] for n, t in texts.items()}
        head = torch.nn.Linear(table.shape[1], 2)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        return Setup(head, lambda items: (torch.stack(items).to(device),), {n: list(f) for n, f in feats.items()}, device)
    lora = train["lora"] if isinstance(train["lora"], dict) else ({} if train["lora"] else None)
    dtype = pick_dtype(train.get("dtype", "auto"), device)
    # "auto" bf16 on a full finetune keeps float32 master weights and autocasts the compute: Adam
    # updates on bf16 weights round away at lr 1e-5. LoRA or an explicit dtype loads weights in it.
    autocast = dtype == torch.bfloat16 and train.get("dtype", "auto") == "auto" and lora is None
    weights = torch.float32 if autocast else dtype
    model, tok = load_classifier(spec, dtype=weights, lora=lora, grad_checkpointing=bool(train.get("grad_checkpointing")))

    def batch(items):
        ids, mask = collate(items, tok.pad_token_id)
        return ids.to(device), mask.to(device)

    return Setup(model, batch, {n: encode(tok, t, train["max_length"]) for n, t in texts.items()}, device, autocast)


def lr_factor(schedule: str, warmup: float, frac: float) -> float:
    if warmup and frac < warmup:
        return frac / warmup
    rest = (frac - warmup) / max(1e-12, 1 - warmup)
    return {"constant": 1.0, "linear": 1 - rest, "cosine": 0.5 * (1 + math.cos(math.pi * rest))}[schedule]


def forward(setup: Setup, module, items: list) -> torch.Tensor:
    """Logits through `module`: the accelerate-prepared wrapper, so DDP/FSDP hooks run."""
    with torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=setup.autocast):
        return module(*setup.batch(items))


@torch.no_grad()
def predict(acc: Accelerator, setup: Setup, module, items: list, bs: int) -> list[float]:
    """P(class 1) for every item, in order (gathered across processes)."""
    module.eval()
    idx = torch.arange(len(items))
    loader = acc.prepare(torch.utils.data.DataLoader(idx, batch_size=bs))
    out = []
    for batch in loader:
        probs = torch.softmax(forward(setup, module, [items[i] for i in batch.tolist()]).float(), -1)[:, 1]
        out.append(acc.gather_for_metrics(probs))
    module.train()
    return torch.cat(out).cpu().tolist() if out else []


def run(job_dir: Path) -> None:
    job = json.loads((job_dir / "job.json").read_text())
    train = job["train"]
    accum = max(1, train["batch_size"] // train["minibatch_size"])
    acc = Accelerator(gradient_accumulation_steps=accum)
    set_seed(job["seed"])
    splits = make_splits(job["data"], job["seed"])
    upstream = None if job["labels"] == "gt" else json.loads((Path(job["upstream_dir"]) / "predictions.json").read_text())
    labels = training_labels(job, splits[job["train_split"]], upstream)
    setup = build(job, splits, acc.device)
    inputs = setup.inputs
    loss_fn = make_loss(job["loss"]["name"], job["loss"]["params"])
    module = acc.prepare(setup.module)
    opt = acc.prepare(torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=train["lr"],
                                       weight_decay=train["weight_decay"]))
    gen = torch.Generator().manual_seed(job["seed"])
    n, mb = len(inputs["train"]), train["minibatch_size"]
    total = max(1, math.ceil(n * train["epochs"]))
    test_labels = splits["test"].labels
    events = open(job_dir / "events.jsonl", "a") if acc.is_main_process else None

    def emit(event: dict) -> None:
        if events:
            events.write(json.dumps(event) + "\n")
            events.flush()

    seen, step, t0, window = 0, 0, time.time(), []
    while seen < total:
        order = torch.randperm(n, generator=gen).tolist()
        for start in range(0, n, mb * acc.num_processes):
            chunk = order[start:start + mb * acc.num_processes][: total - seen]
            if not chunk:
                break
            idx = chunk[acc.process_index::acc.num_processes] or chunk[:1]  # this process's shard
            frac = seen / total
            with acc.accumulate(module):
                logits = forward(setup, module, [inputs["train"][i] for i in idx])
                target = labels[idx].to(logits.device)
                loss = loss_fn(logits, target, frac)
                acc.backward(loss)
                for group in opt.param_groups:
                    group["lr"] = train["lr"] * lr_factor(train["schedule"], train["lr_warmup_frac"], frac)
                opt.step()
                opt.zero_grad()
            seen += len(chunk)
            window.append((loss.item(), (logits.argmax(-1).cpu() == target.argmax(-1).cpu()).float().mean().item()))
            if acc.sync_gradients:
                step += 1
                elapsed = time.time() - t0
                event = {"step": step, "examples": seen, "epoch": seen / n, "loss": sum(w[0] for w in window) / len(window),
                         "train_acc": sum(w[1] for w in window) / len(window), "lr": opt.param_groups[0]["lr"],
                         "examples_per_s": seen / max(elapsed, 1e-9)}
                alpha = loss_alpha(job["loss"]["name"], job["loss"]["params"], frac)
                if alpha is not None:
                    event["alpha"] = alpha
                window = []
                if train["eval_every"] and step % train["eval_every"] == 0:
                    probs = predict(acc, setup, module, inputs["test"], mb * 4)
                    event.update(test_acc=metrics.accuracy(probs, test_labels), test_auroc=metrics.auroc(probs, test_labels))
                emit(event)
            if seen >= total:
                break

    preds = {"test": {"probs": predict(acc, setup, module, inputs["test"], mb * 4), "labels": test_labels}}
    if job["predict_split"]:
        split = splits[job["predict_split"]]
        preds[job["predict_split"]] = {"probs": predict(acc, setup, module, inputs["predict"], mb * 4),
                                       "labels": split.labels}
    if not acc.is_main_process:
        return
    test = preds["test"]["probs"]
    result = {"test_acc": metrics.accuracy(test, test_labels), "test_auroc": metrics.auroc(test, test_labels),
              "train_label_acc": metrics.accuracy(labels[:, 1].tolist(), splits[job["train_split"]].labels),
              "n_test": len(test_labels), "steps": step, "train_seconds": time.time() - t0}
    if upstream is not None:
        result.update(metrics.agreement(test, upstream["test"]["probs"], test_labels))
    emit({"step": step, "event": "final", "test_acc": result["test_acc"], "test_auroc": result["test_auroc"]})
    events.close()
    write_json(job_dir / "env.json", {"device": str(acc.device), "num_processes": acc.num_processes,
                                       "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                                       "distributed_type": str(acc.distributed_type), "torch": torch.__version__})
    write_json(job_dir / "predictions.json", preds)
    write_json(job_dir / "result.json", result)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: accelerate launch -m w2s_core.training JOB_DIR")
    try:
        run(Path(sys.argv[1]))
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
