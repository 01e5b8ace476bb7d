"""Which examples train together (`[train] group_by_length`), and the trainer's other opt-in speed setting.

By default (`group_by_length = false`) the loop draws one random permutation per epoch and cuts it
into minibatches (`minibatches`); every optimiser step is `batch_size` consecutive examples of
that stream. A minibatch is padded to its longest input, so random steps pay for padding: on the
movie snippets about half of a minibatch of 32 is padding. When a step takes several minibatches,
its examples are sorted by length before they are cut (`sorted_step`, always on but for logconf):
the same examples still share the step, so only the padding changes (18% instead of 49% at
minibatch 8 of 32 on the snippets), and predictions stay equal within float tolerance.

With `group_by_length = true` (`grouped_minibatches`) each epoch is
1. a fresh random permutation (the same generator as the default order),
2. cut into mega-batches of M optimiser steps, each sorted by input length, longest first,
3. cut into steps of `batch_size` examples (under DDP too: `world.step_shape`), and
4. the steps' order shuffled over the whole epoch;
then each step is cut into minibatches in its sorted order, so a minibatch holds inputs of
similar length and the padding shrinks (`benchmarks/trainer_speed.py` prints how much).
M = min(50, examples // (4 x step)), at least 1, as Hugging Face's `LengthGroupedSampler`
(`get_length_grouped_indices`, mega_batch_mult 50), which also groups at the optimiser batch
(`train_batch_size x gradient_accumulation_steps`). Where we differ: it keeps the steps of a
mega-batch in order, longest mega-batch first (to run out of memory early); we shuffle the steps
of the epoch, so length does not drift with training progress (learning rate, logconf's α).

What it changes, and why it is opt-in and part of the job key when on: WHICH examples share an
optimiser step. Every step now holds examples of similar length, so the gradient of a step is no
longer an unbiased sample of the data's; short and long inputs train at different points of the
schedule. For logconf (a batch-level loss) the batch is what its class share and hardening rank
are taken over (`loop.batch_targets`): where length correlates with the class (long negative
reviews, say) a length-homogeneous batch has a skewed weak-label class share and its hardening
threshold follows it, so logconf's target changes more than xent's. Results still do not depend on
the minibatch size or the process count: the steps depend only on the lengths, the step size and
the seed, and each step is the same set of examples however it is cut (under DDP, each process
takes every P-th example of a sorted minibatch, so the processes' shards are alike in length too).

Every epoch covers every example exactly once. An epoch whose size is no multiple of the step
leaves a short last step; it waits and is completed by the next epoch's first examples (put after
it, so training that ends there has seen every example its whole number of epochs), as the
default order's last step of an epoch runs on into the next; so every step but the very last of
training has `step` examples and the accumulation stays aligned. That one step per epoch is not
length-homogeneous.

`[train] compile = true` (the other opt-in speed setting) is `compiling.py`'s. It computes the
same function up to float rounding, yet it is part of the job key when on, as every train key away
from its unhashed default: a job's folder records what it ran with, and in bf16 over many steps
rounding differences grow past float tolerance. Off (the default) leaves existing keys alone.

The speed changes that are always on (SDPA attention, eval batched by length, fused Adam on CUDA,
non-blocking input copies) keep predictions equal within float tolerance and need no key
(`tests/test_trainer_speed.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import torch

MEGA_STEPS = 50  # Hugging Face's mega_batch_mult


def minibatches(n: int, size: int, total: int, gen: torch.Generator) -> Iterator[list[int]]:
    """Index lists of up to `size` examples, one fresh permutation per epoch, until `total` are seen."""
    seen = 0
    while seen < total:
        order = torch.randperm(n, generator=gen).tolist()
        for start in range(0, n, size):
            chunk = order[start : start + size][: total - seen]
            yield chunk
            seen += len(chunk)
            if seen >= total:
                return


def optimiser_batches(chunks: Iterator[list[int]], accum: int) -> Iterator[list[list[int]]]:
    """The minibatches of each optimiser step, `accum` at a time (the last group may be short, and then never steps)."""
    while group := list(islice(chunks, accum)):
        yield group


def item_length(item) -> int:
    """The width an input adds to its minibatch's padding: its token count (its longest sequence for a
    pair, context plus longest candidate for a chess item), or a tensor's first dimension (probe features)."""
    if isinstance(item, torch.Tensor):
        return int(item.shape[0]) if item.dim() else 1
    if isinstance(item, tuple):
        first, second = item
        if isinstance(second, list) and second and isinstance(second[0], list):  # chess: (context, [candidates])
            return len(first) + max(len(c) for c in second)
        return max(item_length(first), item_length(second))  # pairwise: both replies share one padding
    return len(item)


def mega_steps(n: int, step: int) -> int:
    """Steps per mega-batch: HF's min(n // (4·step), 50), at least 1, so a small split keeps some randomness."""
    return max(1, min(n // (4 * step), MEGA_STEPS))


def length_steps(order: list[int], lengths: list[int], step: int, mega: int, gen: torch.Generator) -> list[list[int]]:
    """`order` as steps of `step` examples of similar length: the full steps in shuffled order, a short one last."""
    full: list[list[int]] = []
    short: list[int] = []
    size = mega * step
    for start in range(0, len(order), size):
        group = sorted(order[start : start + size], key=lambda i: -lengths[i])  # stable: ties keep their draw
        for s in range(0, len(group), step):
            piece = group[s : s + step]
            if len(piece) == step:
                full.append(piece)
            else:
                short = piece  # only the epoch's last mega-batch can leave one
    shuffled = [full[i] for i in torch.randperm(len(full), generator=gen).tolist()]
    return shuffled + ([short] if short else [])


def grouped_steps(lengths: list[int], step: int, gen: torch.Generator) -> Iterator[list[int]]:
    """Endless length-grouped steps of `step` examples, epoch after epoch (module docstring)."""
    n = len(lengths)
    mega = mega_steps(n, step)
    carry: list[int] = []  # an epoch's short last step, waiting for the next epoch's first examples
    while True:
        order = torch.randperm(n, generator=gen).tolist()
        if carry:
            need = step - len(carry)
            carry = carry + order[:need]
            order = order[need:]
            if len(carry) < step:  # an epoch smaller than the step: keep collecting
                continue
            # the carried examples first, so a last step of training, cut short at `total`, finishes their epoch
            yield carry
            carry = []
        steps = length_steps(order, lengths, step, mega, gen)
        if steps and len(steps[-1]) < step:
            carry = steps.pop()  # already sorted; the next epoch's examples are appended in their drawn order
        yield from steps


def grouped_minibatches(
    lengths: list[int], step: int, size: int, total: int, gen: torch.Generator
) -> Iterator[list[int]]:
    """Index lists of up to `size` examples, cut from length-grouped steps of `step` examples, until `total` are seen.

    A drop-in for `minibatches` (same `size` and `total`); `step` = size x accumulation steps,
    so `optimiser_batches` regroups exactly one grouped step per optimiser step.
    """
    seen = 0
    for batch in grouped_steps(lengths, step, gen):
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size][: total - seen]
            yield chunk
            seen += len(chunk)
            if seen >= total:
                return


def sorted_step(group: list[list[int]], lengths: list[int]) -> list[list[int]]:
    """The step's examples, longest first, re-cut into minibatches of the same sizes (see `training_steps`)."""
    if len(group) < 2:
        return group
    flat = sorted((i for chunk in group for i in chunk), key=lambda i: -lengths[i])
    out, start = [], 0
    for chunk in group:
        out.append(flat[start : start + len(chunk)])
        start += len(chunk)
    return out


def training_steps(
    inputs: list, size: int, accum: int, total: int, gen: torch.Generator, group: bool, sort: bool
) -> Iterator[list[list[int]]]:
    """The minibatches (index lists of up to `size`) of each optimiser step, `accum` per step, until `total`.

    `group`: length-grouped steps (`grouped_minibatches`, opt-in) instead of `minibatches`' order.
    `sort`: each step's examples sorted by length before they are cut into minibatches
    (`sorted_step`). The same examples share the step and every minibatch keeps its size, so the
    step's gradient is the same sum (float rounding aside; results never depend on how a step is
    cut), while a minibatch holds inputs of similar length and pads less; always on, except for a
    batch-level loss (logconf), whose hardening breaks exact ties in the student's probabilities by
    the position in the batch, which the sort would tie to input length.
    """
    lengths = [item_length(x) for x in inputs] if group or sort else []
    if group:
        chunks = grouped_minibatches(lengths, size * accum, size, total, gen)
    else:
        chunks = minibatches(len(inputs), size, total, gen)
    for step in optimiser_batches(chunks, accum):
        yield sorted_step(step, lengths) if sort else step


def padding_share(chunks: list[list[int]], lengths: list[int]) -> float:
    """The share of padded positions over minibatches `chunks` (each padded to its longest input)."""
    padded = sum(max(lengths[i] for i in c) * len(c) for c in chunks if c)
    real = sum(lengths[i] for c in chunks for i in c)
    return 1 - real / padded if padded else 0.0
