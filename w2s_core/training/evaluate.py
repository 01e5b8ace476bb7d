"""Evaluation: predictions, the figures of each eval point, which checkpoint a job keeps, and result.json.

An *eval point* is every `eval_every`-th optimiser step, and the last step. At each, the job
measures the test set (test_acc, test_auroc) and, with `[train] val_size`, its validation slice
(val_loss, val_acc, val_auroc); the figures go into events.jsonl. Three test figures come out of
them (result.json, `w2s_core.jobdir.Result`):

- selected: the eval point `[train] select` keeps. Its predictions are written to predictions.json
  and so label the downstream jobs. "final" keeps the last step (the behaviour before early
  stopping, bit for bit); "val_loss" / "val_auroc" keep the eval point with the lowest validation
  loss / highest validation AUROC, ties to the earliest (as Hugging Face's `load_best_model_at_end`,
  which EleutherAI/w2s uses with val_auroc).
- final: the last step's.
- oracle: the best test accuracy over the eval points, the last one included (the paper's optimistic
  early-stopping figure, its Fig. 7). It looks at the test labels, so every job reports it and
  nothing ever selects by it.

Validation is measured against the job's own supervision, the labels it trains on: ground truth
for a GT job, the upstream job's soft labels for a transfer or a bootstrap step. That is the
criterion a user could deploy (there are no GT labels to stop on in the weak-to-strong setting).
val_loss is the cross-entropy against those soft labels whatever the training loss: logconf's
auxiliary term depends on the batch it is taken over and on the training step, so it is no fixed
yardstick between checkpoints. val_acc and val_auroc compare with the hard supervision labels
(class-1 share above 0.5), as EleutherAI/w2s does.

Cost: a kept checkpoint is its predictions (test set and predict split), not a copy of the model,
since predictions are all a job writes and its downstream jobs read. So with select != "final"
an eval point that beats the kept one also predicts the predict split (the other half, n_train / 2
examples): with n_train = 10,000, batch 32 and eval_every = 25 that is 5,000 inference passes per
800 training examples, about twice the training time (a training example costs about three
inference passes, forward and backward) while the validation figure keeps improving; raise
eval_every to pay less. Memory: the kept point's class-1 probabilities, one float per example of
the test set and the predict split (K floats per example for a K-class task, one per candidate
for chess). With select = "final" nothing is predicted beyond what is reported.

Beyond two ways (`Loop.n_classes` != 2: K-class tasks, and chess with 0) an eval point keeps each
example's whole distribution: predictions.json gets "dists" and, as "probs", the argmax's
probability; hard predictions are argmaxes, and test/val AUROC is the one-vs-rest macro AUROC
(`w2s_core.analysis.stats.auroc`), NaN for chess, whose candidates are no classes. Chess's
minibatches have as many logit columns as their widest candidate set, so inference pads every
minibatch to the job's widest (`common_width`) before gathering and strips each example back to
its own candidates (`Setup.widths`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from w2s_core.analysis import stats as metrics
from w2s_core.jobdir import Event, Result
from w2s_core.training.batching import item_length
from w2s_core.training.labels import label_view
from w2s_core.training.losses import PAD_LOGIT, soft_ce_rows
from w2s_core.training.precision import autocast
from w2s_core.training.setup import Setup

if TYPE_CHECKING:
    from w2s_core.training.loop import Loop

FINAL = "final"
# select -> (the figure it compares, +1 when higher is better, -1 when lower is)
SELECT_BY = {"val_loss": (Event.VAL_LOSS, -1), "val_auroc": (Event.VAL_AUROC, 1)}
VAL_FIGURES = (Event.VAL_LOSS, Event.VAL_ACC, Event.VAL_AUROC)


def forward(setup: Setup, module, items: list) -> torch.Tensor:
    """Logits through `module`: the accelerate-prepared wrapper, so DDP/FSDP hooks run; under the job's
    autocast (bf16 or fp16, `precision.job_precision`), where the classification head opts out."""
    with autocast(setup.device, setup.autocast):
        return module(*setup.batch(items))


def class1(logits: torch.Tensor) -> torch.Tensor:
    """P(class 1) per row, in float32 (bf16 logits included)."""
    return torch.softmax(logits.float(), dim=-1)[:, 1]


def to_width(table: torch.Tensor, width: int, fill: float = 0.0) -> torch.Tensor:
    """[N, C] -> [N, width]: columns of `fill` added on the right, or surplus columns cut.

    Labels are padded to the widest candidate set of their split; a minibatch's logits are as wide
    as its own widest, so its labels lose only padding columns (zeros) to meet them.
    """
    if table.shape[1] >= width:
        return table[:, :width]
    return torch.nn.functional.pad(table, (0, width - table.shape[1]), value=fill)


def common_width(setup: Setup) -> int | None:
    """The widest candidate set of any input the job reads (chess), None when every example has the same classes."""
    return max((max(w, default=0) for w in setup.widths.values()), default=0) or None


def eval_order(items: list) -> list[int]:
    """The order inference reads `items` in: longest first (stable), so each minibatch holds inputs of
    similar length and pads little; the longest come first so memory runs out at once if it does."""
    return sorted(range(len(items)), key=lambda i: -item_length(items[i]))


@torch.no_grad()
def infer(
    loop: Loop, items: list, out: Callable[[torch.Tensor], torch.Tensor], width: int | None = None, fill: float = 0.0
) -> torch.Tensor:
    """out(logits) for every item, in order, gathered across processes (the module in eval mode meanwhile).

    Minibatches are cut from the items sorted by length (`eval_order`) and every row goes back to its
    item's place, by the item indices gathered with it (so it does not matter how accelerate deals
    the minibatches to processes). Each row is computed on its own (no batch statistics, padding
    masked), so the order changes the outputs by float rounding only. With `width`, each
    minibatch's [n, C] output is first padded with `fill` to [n, width], so the gather and the
    concatenation see one width whatever the minibatch's widest candidate set.
    """
    acc, module = loop.acc, loop.module
    module.eval()
    order = torch.tensor(eval_order(items), dtype=torch.long)
    loader = acc.prepare(torch.utils.data.DataLoader(order, batch_size=loop.job["train"]["minibatch_size"] * 4))
    rows, where = [], []
    for batch in loader:
        y = out(forward(loop.setup, module, [items[i] for i in batch.tolist()]))
        rows.append(acc.gather_for_metrics(y if width is None else to_width(y, width, fill)))
        where.append(acc.gather_for_metrics(batch.to(acc.device)))
    module.train()
    if not rows:
        return torch.empty(0)
    gathered = torch.cat(rows).cpu()
    result = torch.empty_like(gathered)
    result[torch.cat(where).cpu()] = gathered
    return result


def _dists(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1)


def strip(table: torch.Tensor, widths: list[int] | None) -> list[list[float]]:
    """Rows of `table` as lists, each cut to its example's candidate count when there are `widths`."""
    rows = table.tolist()
    return rows if widths is None else [row[:c] for row, c in zip(rows, widths)]


def predict(loop: Loop, name: str) -> list:
    """For every item of input `name`, in order (gathered across processes): P(class 1) for a two-way task,
    else its distribution over its classes or candidates."""
    items = loop.setup.inputs[name]
    if loop.n_classes == 2:
        return infer(loop, items, class1).tolist()
    return strip(infer(loop, items, _dists, common_width(loop.setup)), loop.setup.widths.get(name))


def val_figures(loop: Loop) -> dict[str, float]:
    """val_loss, val_acc and val_auroc of the validation slice against its supervision labels (module docstring)."""
    if loop.n_classes != 2:
        return val_figures_k(loop)
    logits = infer(loop, loop.setup.inputs["val"], lambda z: z.float())
    soft = loop.val_labels
    hard = (soft[:, 1] > 0.5).int().tolist()
    probs = class1(logits).tolist()
    return {
        Event.VAL_LOSS: soft_ce_rows(logits, soft).mean().item(),
        Event.VAL_ACC: metrics.accuracy(probs, hard),
        Event.VAL_AUROC: metrics.auroc(probs, hard),
    }


def val_figures_k(loop: Loop) -> dict[str, float]:
    """val_figures beyond two ways: hard supervision labels are the soft labels' argmax (padding never wins)."""
    width = common_width(loop.setup)
    logits = infer(loop, loop.setup.inputs["val"], lambda z: z.float(), width, PAD_LOGIT)
    soft = to_width(loop.val_labels, logits.shape[1])
    hard = soft.argmax(dim=-1).tolist()
    dists = strip(_dists(logits), loop.setup.widths.get("val"))
    return {
        Event.VAL_LOSS: soft_ce_rows(logits, soft).mean().item(),
        Event.VAL_ACC: metrics.accuracy(dists, hard),
        Event.VAL_AUROC: metrics.auroc(dists, hard) if loop.n_classes else math.nan,
    }


@dataclass
class Point:
    """One eval point: its step, its figures (Event keys) and the probabilities computed there."""

    step: int
    figures: dict[str, float]
    # "test" and, when asked, "predict": `predict`'s output (P(class 1), or distributions beyond two ways)
    probs: dict[str, list] = field(default_factory=dict)


def eval_point(loop: Loop, keep_predict: bool) -> Point:
    """Test figures (and validation figures with a val slice) now; the predict split's probabilities too if asked."""
    probs = {"test": predict(loop, "test")}
    if keep_predict and "predict" in loop.setup.inputs:
        probs["predict"] = predict(loop, "predict")
    figures = {
        Event.TEST_ACC: metrics.accuracy(probs["test"], loop.test_labels),
        # chess (n_classes 0): candidate sets are no classes, AUROC is undefined
        Event.TEST_AUROC: metrics.auroc(probs["test"], loop.test_labels) if loop.n_classes else math.nan,
    }
    if loop.val_labels is not None:
        figures.update(val_figures(loop))
    return Point(loop.step, figures, probs)


def offer_point(loop: Loop, point: Point) -> None:
    """Offer an eval point before the last to the selection, predicting the predict split only if it is kept."""
    if loop.selection.improves(point) and "predict" in loop.setup.inputs:
        point.probs["predict"] = predict(loop, "predict")
    loop.selection.offer(point)


@dataclass
class Selection:
    """The eval points so far: the one `select` keeps (with its probabilities) and the oracle (figures only)."""

    select: str = FINAL
    best: Point | None = None
    oracle: Point | None = None

    def score(self, point: Point) -> float:
        """Higher is better; NaN (e.g. AUROC of a one-class slice) never wins."""
        key, sign = SELECT_BY[self.select]
        return sign * point.figures.get(key, math.nan)

    def improves(self, point: Point) -> bool:
        """Whether `point` would become the kept one (never with select = "final", which keeps the last)."""
        if self.select == FINAL:
            return False
        score = self.score(point)
        return not math.isnan(score) and (self.best is None or score > self.score(self.best))

    def offer(self, point: Point) -> None:
        if self.oracle is None or point.figures[Event.TEST_ACC] > self.oracle.figures[Event.TEST_ACC]:
            self.oracle = Point(point.step, point.figures)  # no probabilities: nothing selects by it
        if self.improves(point):
            self.best = point

    def close(self, final: Point) -> Point:
        """Offer the last step's point and return the kept one."""
        self.offer(final)
        if self.select == FINAL:
            return final
        if self.best is None:
            print(
                f"warning: [train] select = {self.select!r}, but no eval point had a {SELECT_BY[self.select][0]} "
                "(a validation slice with one class has no AUROC): keeping the last step",
                file=sys.stderr,
            )
            return final
        return self.best


def predictions(point: Point, loop: Loop, splits: dict) -> dict:
    """predictions.json: P(class 1) and the true labels on the test set and on the split the job labels.

    Beyond two ways each split also gets "dists" (each example's distribution) and "probs" is the
    probability of its argmax.
    """
    outputs = {"test": (point.probs["test"], loop.test_labels)}
    name = loop.job["predict_split"]
    if name:
        outputs[name] = (point.probs["predict"], splits[name].labels)
    if loop.n_classes == 2:
        return {split: {"probs": p, "labels": y} for split, (p, y) in outputs.items()}
    return {split: {"probs": [max(d) for d in p], "labels": y, "dists": p} for split, (p, y) in outputs.items()}


def figures(selection: Selection, chosen: Point, final: Point, n_val: int) -> dict:
    """result.json's selected, final and oracle figures (and the kept point's validation figures)."""
    oracle = selection.oracle
    out = {
        Result.SELECTED_STEP: chosen.step,
        Result.FINAL_TEST_ACC: final.figures[Event.TEST_ACC],
        Result.FINAL_TEST_AUROC: final.figures[Event.TEST_AUROC],
        Result.ORACLE_TEST_ACC: oracle.figures[Event.TEST_ACC],
        Result.ORACLE_STEP: oracle.step,
    }
    if n_val:
        out[Result.N_VAL] = n_val
        out.update({key: chosen.figures[key] for key in VAL_FIGURES})
    return out


def summarize(loop: Loop, chosen: Point, final: Point, trained: list[int], upstream: dict | None) -> dict:
    """result.json: the kept checkpoint's test figures, how good the training labels were (`trained`: the
    true labels of the examples trained on), agreement with the weak model; final and oracle figures."""
    test, test_labels = chosen.probs["test"], loop.test_labels
    result = {
        Event.TEST_ACC: chosen.figures[Event.TEST_ACC],
        Event.TEST_AUROC: chosen.figures[Event.TEST_AUROC],
        "train_label_acc": metrics.accuracy(label_view(loop.labels, loop.n_classes), trained),
        "n_test": len(test_labels),
        Result.CHANCE_ACC: chance_acc(loop),
        "steps": loop.step,
        "train_seconds": time.time() - loop.t0,
    }
    if upstream is not None:
        weak = upstream["test"].get("dists") or upstream["test"]["probs"]
        result.update(metrics.agreement(test, weak, test_labels))
    result.update(figures(loop.selection, chosen, final, 0 if loop.val_labels is None else len(loop.val_labels)))
    return result


def chance_acc(loop: Loop) -> float:
    """Mean of 1/C over the test examples: C classes, or each chess position's legal moves."""
    widths = loop.setup.widths.get("test")
    if widths:
        return sum(1 / c for c in widths) / len(widths)
    return 1 / loop.n_classes
