"""Probe features: a frozen backbone's pooled hidden states, extracted once and cached on disk.

A probe job (`mode = "probe"`) trains only a linear head on these. One cache entry holds the
features of every text a model sees in a recipe (halves A and B and the test set), keyed by the
model's fingerprint, the pooling, `max_length` and the texts, so every probe job on that model
(and, with a fixed train pool, every seed) loads it instead of running the backbone again.
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
from w2s_core.training.models import POOLING, collate, encode, load_backbone, load_tokenizer, model_arch, pool


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
    """Frozen-backbone pooled features [N,H] float32, in input order (batched by length for speed)."""
    device = torch.device(device)
    backbone = load_backbone(spec, dtype).to(device).eval().requires_grad_(False)
    pooling = POOLING[model_arch(spec, backbone.config)]
    tok = load_tokenizer(spec)
    ids = encode(tok, texts, max_length, side)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)  # longest first: OOM early
    out = torch.empty((len(ids), backbone.config.hidden_size), dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = collate([ids[i] for i in rows], tok.pad_token_id)
            input_ids, mask = input_ids.to(device), mask.to(device)
            hidden = backbone(input_ids=input_ids, attention_mask=mask)[0]
            out[rows] = pool(hidden, mask, pooling).cpu()
    return out


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 over the texts in order, each length-prefixed so ["ab", "c"] and ["a", "bc"] differ."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cached_features(
    spec: dict,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    device: torch.device | str,
    side: str = "right",
) -> torch.Tensor:
    """extract_features, memoised on disk so probe jobs sharing a model and texts run it once."""
    pooling = POOLING[model_arch(spec)]
    # the truncation side joins the key only when it is not the original "right", so old entries stay valid
    key = sha256_text(
        json.dumps(
            [model_fingerprint(spec), pooling, max_length, texts_digest(texts)] + ([side] if side != "right" else [])
        )
    )
    path = cache_dir() / "features" / f"{key}.pt"
    with locked(path.with_suffix(".lock")):  # a parallel job wanting the same features waits, then loads
        if path.is_file():
            return torch.load(path, weights_only=True)
        features = extract_features(spec, texts, max_length=max_length, batch_size=batch_size, device=device, side=side)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(features, f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return features
