"""What the number of processes changes in a training job, and what it must not.

A job may run as one process or as several under DDP (`accelerate launch --num_processes P`,
`[launch] gpus_per_job`), with the same job.json and so the same job key; its results must not
depend on P. `step_shape` keeps every optimiser step on the same `batch_size` examples whatever P
(`tests/test_multiprocess.py` trains one job both ways and compares the predictions);
`check_world` stops a launch whose processes never joined one group before any of them trains.
"""

from __future__ import annotations

import math
import os

import torch
from accelerate import Accelerator

from w2s_core.errors import W2SError


def check_world(acc: Accelerator) -> None:
    """Refuse a launch whose processes did not join one group: each would train the whole job and write its folder.

    `accelerate launch --multi_gpu --num_processes 2` on a machine without CUDA starts two workers
    (WORLD_SIZE 2) that each find no GPU and run alone unless ACCELERATE_USE_CPU=1 (gloo) is set.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if acc.num_processes != world:
        hint = "" if torch.cuda.is_available() else "; on a CPU, set ACCELERATE_USE_CPU=1 so they join one gloo group"
        raise W2SError(f"the launcher started {world} processes but accelerate sees {acc.num_processes}{hint}")


def step_shape(train: dict, processes: int) -> tuple[int, int]:
    """(examples per minibatch across all processes, minibatches per optimiser step).

    `batch_size` is the effective batch whatever the process count, as in `generative.py` and the
    reference (openai/weak-to-strong: `batch_size` per step, `minibatch_size_per_device` the
    per-device memory knob): every step trains on the same examples, so a job's results do not
    depend on how many processes run it. `minibatch_size` bounds what one process takes per pass.
    One process: minibatches of `minibatch_size`, `batch_size // minibatch_size` of them per step,
    as always; with P processes the fewest passes that keep each process within `minibatch_size`
    and cut the batch evenly (batch 16: with minibatch 8 and P = 2 one pass of 8 per process, with
    minibatch 4 and P = 2 two passes of 4). Where a pass does not split evenly over the processes
    (batch 6 on P = 4, or an epoch's short last minibatch) the shards differ in size: the batch-level
    losses weigh their rows for that (`loop.batch_level_loss`), a per-example loss by `shard_weight`,
    so a pass trains on its examples' mean whatever P.

    What still depends on P (a limitation): when P processes take a pass larger than `minibatch_size`
    (the cases above with P = 2), an epoch whose size is no multiple of the pass ends on another short
    minibatch than one process's, so the tail steps of each epoch hold other examples; with
    `minibatch_size = batch_size`, or epochs that divide evenly, the steps are the same.
    """
    mini = train["minibatch_size"]
    batch = mini * max(1, train["batch_size"] // mini)  # what one process has always stepped on
    accum = max(1, math.ceil(batch / (mini * processes)))
    while batch % accum:
        accum += 1
    return batch // accum, accum


def shard(acc: Accelerator, chunk: list[int]) -> list[int]:
    """This process's rows of a minibatch: every P-th. A process with none repeats the first row, so
    every process runs a pass (DDP's gradient sync needs all of them); `shard_weight` weighs it 0."""
    return chunk[acc.process_index :: acc.num_processes] or chunk[:1]


def shard_weight(acc: Accelerator, chunk: list[int]) -> float:
    """The factor on this process's mean per-example loss over its shard of `chunk` that makes the pass
    train on the chunk's mean after DDP averages the P processes' gradients: |shard| x P / |chunk|.

    1 when the chunk splits evenly (one process: always), so the loss is then left as it was; 0 for a
    process whose shard is empty and repeats a row (`shard`), which must not count that row twice.
    Before issue 14 an uneven pass gave the rows of the smaller shards more weight, and the repeated
    row trained again.
    """
    real = len(chunk[acc.process_index :: acc.num_processes])
    return real * acc.num_processes / len(chunk)
