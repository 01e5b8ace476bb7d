"""A training loop with openai/weak-to-strong's semantics, for `benchmarks/trainer_speed.py` to race against.

What we follow (weak_to_strong/train.py @6b450f2, as our field notes describe it; see
/work/shared/field-notes.md "Reference semantics"):
- batch 32 built from `batch_size // minibatch_size` forward passes, minibatch 1 per device by
  default (`train_simple.py` sets `minibatch_size_per_device = 1` when none is given);
- each minibatch padded by `torch.nn.utils.rnn.pad_sequence` with id 0 (then transposed to
  batch-first), the transformer called on the ids alone (no attention mask), and the head reading
  the hidden state of the last token whose id is not 0 (`TransformerWithHead`: a zero-initialised,
  bias-free linear layer, one hidden state gathered per row in a Python loop);
- the logits of every minibatch of the batch kept (so every minibatch's graph stays alive), stacked,
  the loss called once on the whole batch, one backward;
- `loss.item()` and the batch accuracy `.item()` read every batch, as the reference logs them;
- torch.optim.Adam, no weight decay, cosine annealing stepped once per batch; one shuffle per epoch.
Where we differ, so both sides run the same model in the same numerics: the loss is soft-label
cross-entropy on float32 logits (the reference's xent); on CUDA the forward pass runs under bf16
autocast on float32 weights, as the w2s trainer's dtype "auto" does (the reference loads some models
in bf16 instead); attention is "eager" unless asked otherwise (the reference was released in
Dec. 2023 for transformers of that time, whose GPT-2 ran eager attention; SDPA is one of the
speed changes under test). Only the loop is timed, not model loading.
"""

from __future__ import annotations

import math
import random
from itertools import islice

import torch
from torch import nn

BATCH = 32


class TransformerWithHead(nn.Module):
    """The reference's classifier: a transformer body and a linear head on the last token whose id is not 0."""

    def __init__(self, body: nn.Module, hidden_size: int):
        super().__init__()
        self.transformer = body
        self.score = nn.Linear(hidden_size, 2, bias=False)
        nn.init.zeros_(self.score.weight)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        input_lens = (input_ids != 0).sum(dim=-1)
        hidden = self.transformer(input_ids)[0]
        states = torch.stack([hidden[i, input_lens[i] - 1, :] for i in range(len(input_lens))])
        return self.score(states.float())


def xent(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Soft-label cross-entropy on float32 logits, the reference's default loss."""
    return -(labels.float() * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def train_reference(
    model: nn.Module,
    ids: list[list[int]],
    labels: list[list[float]],
    device: torch.device,
    *,
    lr: float = 5e-5,
    minibatch: int = 1,
    seed: int = 0,
    autocast: bool = False,
) -> dict:
    """One epoch over `ids` in the reference's loop; returns what it counted (padded positions included)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    nsteps = math.ceil(len(ids) / BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / nsteps)))
    order = list(range(len(ids)))
    random.Random(seed).shuffle(order)
    it = iter(order)
    padded, losses = 0, []
    model.train()
    for _ in range(nsteps):
        all_logits, all_labels = [], []
        for _ in range(BATCH // minibatch):
            rows = list(islice(it, minibatch))
            if not rows:
                break
            input_ids = nn.utils.rnn.pad_sequence([torch.tensor(ids[i]) for i in rows]).transpose(0, 1).to(device)
            padded += input_ids.numel()
            y = torch.tensor([labels[i] for i in rows]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(input_ids)
            all_logits.extend(logits)
            all_labels.extend(y)
        logits, y = torch.stack(all_logits), torch.stack(all_labels)
        loss = xent(logits, y)
        losses.append(loss.item())  # the reference's loss_tot += loss.item(), every batch
        loss.backward()
        torch.mean((logits.argmax(dim=1) == y.argmax(dim=1)).float()).item()  # its logged accuracy
        opt.step()
        opt.zero_grad()
        sched.step()
    return {"steps": nsteps, "padded_tokens": padded, "last_loss": losses[-1]}
