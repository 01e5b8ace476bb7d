"""The events.jsonl line of each optimiser step, and when its loss and accuracy are read from the device.

Each minibatch leaves its [loss, train accuracy] on the device (`loop.train_minibatch`); once per
optimiser step `progress_event` stacks them (the mean over processes under DDP) and turns them into
one line: step, examples, epoch, mean loss and accuracy, learning rate, logconf's α, and test (and
validation) figures when `eval_every` says so. A NaN or infinite loss fails the job there
(`precision.check_loss`).

Reading the figures means waiting for the step's GPU work to finish. Read at once, the host would
then have nothing queued for the GPU while it builds the next step's inputs and issues its first
kernels: on an H200 that wait cost 1.6% of the step time of a compiled gpt2-large and 7% of a
compiled Qwen2-0.5B (`benchmarks/trainer_speed.py`, the `+nosync` side against the default, three
profiled steps each). So on a GPU the step's figures are copied to pinned host memory behind the
step's kernels (`StepFigures`: a non-blocking copy and a CUDA event) and read one step late, when
the next step's work is already queued: the GPU never waits for the host's bookkeeping. The line of
step k is then written at the end of step k + 1, with step k's own numbers (captured when step k
ended: examples, learning rate, α; the rate `examples_per_s` is taken when the line is written).

Under DDP each process's SIGTERM/SIGUSR1 flag rides along as one more row of the reduced figures
(`stop_row`), so the processes agree to stop and checkpoint at the step where the flag is read,
with no collective and host read of its own (`Loop.signalled`, `checkpoint.Stopper.requested`):
at that step's end on a CPU, a step later on a GPU.

A step's line is written at once (`flush`), never late, where something must see it first: a step
with an eval point (evaluation reads that step's model, and early stopping's selection its figures),
a step that saves a checkpoint or stops on a signal (`checkpoint.Checkpointer.after_step` calls
`flush` before saving, so a resumed job's events.jsonl holds every step once), and the last step.
On a CPU (and wherever `Loop.lag` is False) every line is written at once, as before: there the
figures are computed by the time the loop reaches them. A divergence is reported for the step it
happened in, at most one step later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from w2s_core.jobdir import Event
from w2s_core.training.evaluate import eval_point, offer_point
from w2s_core.training.losses import loss_alpha
from w2s_core.training.precision import check_loss

if TYPE_CHECKING:
    from w2s_core.training.loop import Loop


@dataclass
class StepFigures:
    """One optimiser step's numbers, captured at its end; its [loss, acc] rows still on their way to the host."""

    step: int
    seen: int
    step_frac: float
    lr: float
    rows: torch.Tensor  # [minibatches, 2]: pinned host memory being filled (GPU), or the values (CPU)
    ready: torch.cuda.Event | None = None  # recorded behind the copy; None when `rows` is already there
    signal_row: bool = False  # under DDP the last row is [share of processes signalled, 0] (`stop_row`)

    @classmethod
    def take(cls, loop: Loop, step_frac: float, lag: bool) -> StepFigures:
        window = torch.stack(loop.window)
        loop.window = []
        several = loop.acc.num_processes > 1
        if several:  # the mean over processes: a NaN on any one stops them all at this step
            window = loop.acc.reduce(torch.cat([window, stop_row(loop, window)]), reduction="mean")
        ready = None
        if lag and window.device.type == "cuda":
            host = torch.empty(window.shape, dtype=window.dtype, pin_memory=True)
            host.copy_(window, non_blocking=True)  # queued behind the step's kernels
            ready = torch.cuda.Event()
            ready.record()
            window = host
        return cls(loop.step, loop.seen, step_frac, loop.opt.param_groups[0]["lr"], window, ready, several)

    def values(self) -> tuple[list[list[float]], bool]:
        """([loss, acc] of each minibatch, whether any process had been signalled by this step's end)."""
        if self.ready is not None:
            self.ready.synchronize()  # only this step's copy: later steps' kernels keep running
        rows = self.rows.tolist()
        return (rows[:-1], rows[-1][0] > 0) if self.signal_row else (rows, False)


def stop_row(loop: Loop, window: torch.Tensor) -> torch.Tensor:
    """[1 if this process got SIGTERM/SIGUSR1, 0]: reduced with the step's figures, so under DDP every
    process learns of a signal without a collective and a host read of its own (checkpoint.Stopper)."""
    ckpt = loop.checkpointer
    signalled = ckpt is not None and ckpt.stopper.signum is not None
    return torch.tensor([[float(signalled), 0.0]], dtype=window.dtype, device=window.device)


def lags(loop: Loop) -> bool:
    """Whether the loop reads each step's figures one step late (`Loop.lag`; None: on a GPU)."""
    return loop.acc.device.type == "cuda" if loop.lag is None else loop.lag


def progress_event(loop: Loop, n: int, step_frac: float) -> list[dict]:
    """At an optimiser step's end: the events.jsonl lines due now (the previous step's, this step's, or none)."""
    train = loop.job["train"]
    lag = lags(loop)
    figures = StepFigures.take(loop, step_frac, lag)
    out = flush(loop, n)  # the step before: its copy is done, or finishes while this step's kernels run
    loop.pending = figures
    evaluates = bool(train["eval_every"]) and loop.step % train["eval_every"] == 0
    if not lag or evaluates:
        out += flush(loop, n)
    return out


def flush(loop: Loop, n: int) -> list[dict]:
    """The line of the step still waiting to be read, if any (evaluated here when its step is an eval point)."""
    figures, loop.pending = loop.pending, None
    if figures is None:
        return []
    train = loop.job["train"]
    window, signalled = figures.values()
    loop.signalled = loop.signalled or signalled
    check_loss([w[0] for w in window], figures.step, train)
    elapsed = time.time() - loop.t0
    event = {
        Event.STEP: figures.step,
        Event.EXAMPLES: figures.seen,
        Event.EPOCH: figures.seen / n,
        Event.LOSS: sum(w[0] for w in window) / len(window),
        Event.TRAIN_ACC: sum(w[1] for w in window) / len(window),
        Event.LR: figures.lr,
        Event.EXAMPLES_PER_S: figures.seen / max(elapsed, 1e-9),
    }
    alpha = loss_alpha(loop.job["loss"]["name"], loop.job["loss"]["params"], figures.step_frac)  # the α it used
    if alpha is not None:
        event[Event.ALPHA] = alpha
    if train["eval_every"] and figures.step % train["eval_every"] == 0:
        assert figures.step == loop.step, "an eval point is read at its own step (progress_event flushes it)"
        point = eval_point(loop, keep_predict=False)
        offer_point(loop, point)
        event.update(point.figures)
    return [event]
