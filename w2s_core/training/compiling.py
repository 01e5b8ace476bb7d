"""`[train] compile = true`: what torch.compile compiles in a job's model, block by block.

The default is eager PyTorch. With `compile = true` the trainer compiles the model in place before
accelerate wraps it (`loop.prepare`), by *regional compilation* (PyTorch's recipe "Reducing
torch.compile cold start compilation time with regional compilation"): each instance of the
model's layer classes, named by the model's own `_no_split_modules` (the transformer block:
`GPT2Block`, `Qwen2DecoderLayer`; BERT also names `BertEmbeddings`), which w2s's wrappers pass on
from the backbone as FSDP reads them, is compiled with `nn.Module.compile`; the rest (embeddings,
pooling, the float32 head, the loss) stays eager. All blocks share one compiled graph (Dynamo
treats their parameters as inputs, not constants), so a 36-layer model compiles one block rather
than 36 unrolled ones: compile time no longer grows with depth. The speed comes from inside the
blocks: the elementwise work between matrix products (GPT-2's tanh GELU is eight kernels in eager
mode, Qwen's RMSNorm five, each a full pass over the activations) fuses into a few kernels.

A model that names no such class (a custom architecture) is compiled whole, as before. Same
function either way, up to float rounding (fused kernels sum in another order); the job key has
`compile` only when on (`batching`'s docstring says why).

Blocks compile with dynamic shapes (`dynamic=True`), so one graph serves every input width and
minibatch size; what still compiles anew is each kind of pass (with or without a padding mask,
with gradients or without: eval and logconf's target pass), four graphs at most, each paid once in
the first minibatches that need it (tens of seconds on a GPU). Measured with Dynamo's counters on
a 6-layer GPT-2: 4 graphs for 3 widths x 2 mask states x 2 grad modes, shared by all 6 blocks.
"""

from __future__ import annotations

from collections import Counter

import torch


def blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The instances of the model's layer classes (`_no_split_modules`), outermost only, in order."""
    names = set(getattr(module, "_no_split_modules", None) or ())
    found: list[torch.nn.Module] = []
    inner: set[int] = set()  # modules inside a block already found: compiled with it
    for m in module.modules():
        if id(m) not in inner and type(m).__name__ in names:
            found.append(m)
            inner.update(id(sub) for sub in m.modules())
    return found


def compile_model(module: torch.nn.Module) -> str:
    """Compile `module` in place, block by block where it names its blocks; says what was compiled."""
    found = blocks(module)
    if not found:
        module.compile()
        return f"{type(module).__name__} (whole)"
    for block in found:
        block.compile(dynamic=True)  # input widths vary by minibatch: one graph for all, no recompiles
    counts = Counter(type(b).__name__ for b in found)
    return ", ".join(f"{n} x {name}" for name, n in counts.items())
