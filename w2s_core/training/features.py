"""Probe features: a frozen backbone's pooled hidden states, extracted once and cached on disk.

A probe job (`mode = "probe"`) trains only a linear head on these. One cache entry holds the
features of every text a model sees in a recipe (halves A and B and the test set), keyed by the
model's fingerprint, the pooling, `max_length` and the texts, so every probe job on that model
(and, with a fixed train pool, every seed) loads it instead of running the backbone again.

Speed (issue 14): the backbone runs in the job's compute dtype (`[train] dtype`: bf16 on a GPU with
"auto", float32 on a CPU), and the features are kept in float32. The dtype joins the cache key only
when it is not float32, so CPU entries made before stay valid, and bf16 features never stand in for
float32 ones. The inputs are sorted by length, longest first, and cut into passes of at most a token
budget of padded tokens (`token_batches`): `batch_size` inputs at `max_length`, the most one pass held
before, so the first pass is as large as it was while passes of short inputs hold many more. Every
input's features are computed on their own (padding masked, no batch statistics), so batching changes
them by float rounding only, and the rows come back in the input order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence

import torch

from w2s_core.paths import cache_dir, locked
from w2s_core.spec.models import model_fingerprint, sha256_text
from w2s_core.training.models import (
    POOLING,
    collate,
    encode,
    load_backbone,
    load_tokenizer,
    model_arch,
    pool,
    to_device,
    unpadded,
)


def token_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Positions of `lengths` in passes, longest first (ties in input order), each as many inputs as fit
    `budget` padded tokens (its first input's length times its size), and at least one."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        size = max(1, budget // max(1, lengths[order[start]]))
        batches.append(order[start : start + size])
        start += size
    return batches


def extract_features(
    spec: dict,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    side: str = "right",
) -> torch.Tensor:
    """Frozen-backbone pooled features [N,H] float32, in input order, computed in `dtype`, in passes of at
    most `batch_size` x `max_length` padded tokens (module docstring)."""
    device = torch.device(device)
    backbone = load_backbone(spec, dtype, device=device).to(device).eval().requires_grad_(False)
    pooling = POOLING[model_arch(spec, backbone.config)]
    tok = load_tokenizer(spec)
    ids = encode(tok, texts, max_length, side)
    out = torch.empty((len(ids), backbone.config.hidden_size), dtype=torch.float32, device=device)
    with torch.no_grad():
        for rows in token_batches([len(x) for x in ids], batch_size * max_length):
            batch = [ids[i] for i in rows]
            input_ids, mask = collate(batch, tok.pad_token_id)
            mask = None if unpadded(batch) else to_device(mask, device)  # no padding: no mask to read
            hidden = backbone(input_ids=to_device(input_ids, device), attention_mask=mask)[0]
            out[torch.tensor(rows, device=device)] = pool(hidden, mask, pooling)
    return out.cpu()  # one copy to the host, after the last pass


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 over the texts in order, each length-prefixed so ["ab", "c"] and ["a", "bc"] differ."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def features_key(spec: dict, texts: Sequence[str], max_length: int, dtype: torch.dtype, side: str) -> str:
    """The cache entry's name. The truncation side joins it only when it is not the original "right", the
    dtype only when it is not float32: entries made before either existed keep their names."""
    extra = [side] if side != "right" else []
    if dtype != torch.float32:
        extra.append(str(dtype).removeprefix("torch."))
    pooling = POOLING[model_arch(spec)]
    return sha256_text(json.dumps([model_fingerprint(spec), pooling, max_length, texts_digest(texts)] + extra))


def cached_features(
    spec: dict,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    side: str = "right",
) -> torch.Tensor:
    """extract_features, memoised on disk so probe jobs sharing a model and texts run it once."""
    key = features_key(spec, texts, max_length, dtype, side)
    path = cache_dir() / "features" / f"{key}.pt"
    with locked(path.with_suffix(".lock")):  # a parallel job wanting the same features waits, then loads
        if path.is_file():
            return torch.load(path, weights_only=True)
        features = extract_features(
            spec, texts, max_length=max_length, batch_size=batch_size, device=device, dtype=dtype, side=side
        )
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(features, f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return features
