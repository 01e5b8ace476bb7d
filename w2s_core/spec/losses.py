"""The loss names a recipe may use, their parameters, defaults and ranges, and logconf's α schedule.

This is the torch-free half of the losses: the recipe validator and the planner need names and
parameters, not tensors. The loss functions themselves live in `w2s_core.training.losses`, keyed
by the same names (a test checks that the two registries agree).
"""

from __future__ import annotations

import math

from w2s_core.errors import InputError, did_you_mean

# Allowed range (inclusive) of each parameter; the defaults live in LOSS_DEFAULTS.
RANGES: dict[str, tuple[float, float]] = {"alpha": (0.0, 1.0), "warmup_frac": (0.0, 1.0), "beta": (0.0, math.inf)}

LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "xent": {},
    "kl": {},
    "product": {"alpha": 1.0, "beta": 1.0},
    "logconf": {"alpha": 0.5, "warmup_frac": 0.2},
}


def resolve_loss(name: str, params: dict) -> dict[str, float]:
    """The loss's defaults overridden by params, after checking every key and value."""
    if name not in LOSS_DEFAULTS:
        names = sorted(LOSS_DEFAULTS)
        raise InputError(f"unknown loss '{name}'{did_you_mean(name, names)}; allowed: {', '.join(names)}.")
    defaults = LOSS_DEFAULTS[name]
    allowed = ", ".join(defaults) or "none (this loss takes no parameters)"
    merged = dict(defaults)
    for key, value in params.items():
        if key not in defaults:
            raise InputError(
                f"loss '{name}': unknown parameter '{key}'{did_you_mean(key, defaults)}; allowed: {allowed}."
            )
        lo, hi = RANGES[key]
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok_type or not math.isfinite(value) or not lo <= value <= hi:
            bounds = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f"at least {lo:g}"
            raise InputError(f"loss '{name}': parameter '{key}' is {value!r}; expected a number {bounds}.")
        merged[key] = float(value)
    return merged


def alpha_at(step_frac: float, alpha: float, warmup_frac: float) -> float:
    """logconf's auxiliary weight: a linear ramp from 0 to alpha over the first warmup_frac of training."""
    if warmup_frac <= 0:
        return alpha
    return alpha * min(1.0, max(0.0, step_frac) / warmup_frac)



def loss_alpha(name: str, params: dict, step_frac: float) -> float | None:
    """The α in effect at step_frac (logconf's warmed-up weight, product's weak exponent), None if the loss has none."""
    merged = resolve_loss(name, params)
    if name == "logconf":
        return alpha_at(step_frac, merged["alpha"], merged["warmup_frac"])
    return merged.get("alpha")
