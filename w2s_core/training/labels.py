"""A job's training labels: soft labels [N, C] from ground truth or from its upstream (weak) job.

C is 2 for binary and pairwise tasks, K for a K-class task, and for chess the training split's
widest candidate set: chess rows are padded with 0 there, and each minibatch's rows are later cut
to its logits' width (`w2s_core.training.evaluate.to_width`; only padding columns go).
"""

from __future__ import annotations

import torch

from w2s_core.errors import W2SError


def label_width(split) -> int:
    """Columns of a split's labels: its classes, or its widest candidate set (chess, n_classes 0)."""
    return split.n_classes or max((len(c) for c in split.choices), default=1)


def training_labels(job: dict, split, upstream: dict | None) -> torch.Tensor:
    """Soft labels [N, C] for the training split: one-hot GT, or the upstream job's predictions.

    GT is one-hot over the task's classes (chess: over the example's candidates). Upstream labels
    are its "dists" where it wrote them (K-class and choice tasks), else [1 - p, p] from its "probs".
    Chess's rows are padded with 0 to the split's widest candidate set (see the module docstring).
    """
    width = label_width(split)
    if upstream is None:
        if width != 2:
            return torch.nn.functional.one_hot(torch.tensor(split.labels), width).float()
        p = torch.tensor(split.labels, dtype=torch.float32)
        return torch.stack([1 - p, p], dim=1)
    entry = upstream[job["labels"]["split"]]
    probs = entry["probs"]
    if len(probs) != len(split.labels):
        raise W2SError(
            f"upstream labels have {len(probs)} rows but split {job['train_split']} has "
            f"{len(split.labels)}: the upstream job {job['labels']['from'][:10]} is stale"
        )
    if entry.get("dists") is not None:
        return upstream_dists(job, split, entry["dists"], width)
    if width != 2:
        raise W2SError(
            f'the upstream job {job["labels"]["from"][:10]} wrote two-way predictions (no "dists") but this '
            f"task has {width} classes: it was run on other data. Run it again (`w2s run --force`)."
        )
    p = torch.tensor(probs, dtype=torch.float32)
    return torch.stack([1 - p, p], dim=1)


def upstream_dists(job: dict, split, dists: list[list[float]], width: int) -> torch.Tensor:
    """The upstream job's distributions as [N, width] labels, each checked against the example's classes."""
    sizes = [len(c) for c in split.choices] if not split.n_classes else [split.n_classes] * len(dists)
    bad = [i for i, (d, n) in enumerate(zip(dists, sizes)) if len(d) != n]
    if bad:
        raise W2SError(
            f"the upstream job {job['labels']['from'][:10]}'s distribution for example {bad[0]} of split "
            f"{job['train_split']} has {len(dists[bad[0]])} values where the task has {sizes[bad[0]]}: the "
            "upstream job is stale. Run it again (`w2s run --force`)."
        )
    out = torch.zeros(len(dists), width)
    for i, d in enumerate(dists):
        out[i, : len(d)] = torch.tensor(d, dtype=torch.float32)
    return out


def label_view(labels: torch.Tensor, classes: int) -> list:
    """Soft labels as the metrics read them: class-1 probabilities for a two-way task, else distributions
    (chess's padding columns are 0, so they never win an argmax)."""
    return labels[:, 1].tolist() if classes == 2 else labels.tolist()
