"""The loss names a recipe may use, their parameters, defaults and ranges, and logconf's α schedule.

This is the torch-free half of the losses: the recipe validator and the planner need names and
parameters, not tensors. The loss functions themselves live in `w2s_core.training.losses`, keyed
by the same names (a test checks that the two registries agree).

logconf's `warmup` picks how α reaches its full value (`alpha_at`):
- "linear" (the default): α·min(1, step_frac / warmup_frac), a ramp from 0 to α over warmup_frac.
- "reference": openai/weak-to-strong's released `logconf_loss_fn` (weak_to_strong/loss.py):
  `coef = 1.0 if step_frac > warmup_frac else step_frac`, α·coef, with step_frac = step / nsteps
  (train.py, the optimiser step about to be taken, from 0). So α·step_frac up to and including
  warmup_frac (at most α·warmup_frac: α/20 with the reference's aux_coef 0.5 and warmup_frac 0.1),
  then a jump to α. Choosing it without a `warmup_frac` gives the reference's 0.1.

logconf's hard(f): on a two-way task (binary classification, pairwise preference) the student's
predictions thresholded so the batch's class-1 share matches the weak labels', as the paper and
the reference do. The paper defines it for binary tasks only; on K > 2 classes and on chess's
per-example legal moves w2s hardens to the student's own argmax (a one-hot of its most probable
class or move), which is per-example and needs no batch (`w2s_core.training.losses.argmax_target`).
"""

from __future__ import annotations

import math

from w2s_core.errors import InputError, did_you_mean
from w2s_core.spec.checks import without_defaults

# Allowed range (inclusive) of each parameter; the defaults live in LOSS_DEFAULTS.
RANGES: dict[str, tuple[float, float]] = {"alpha": (0.0, 1.0), "warmup_frac": (0.0, 1.0), "beta": (0.0, math.inf)}

LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "xent": {},
    "kl": {},
    "product": {"alpha": 1.0, "beta": 1.0},
    "logconf": {"alpha": 0.5, "warmup_frac": 0.2},
}

# Parameters whose value is one of a few words, the first being the default. They join a loss's
# parameters only when a recipe sets them, so the resolved parameters (and job keys) of recipes
# written before they existed stay as they were.
LOSS_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {"logconf": {"warmup": ("linear", "reference")}}
# A parameter at this value is left out of a job's key (plan.job_key): writing the default out
# names the same job as leaving it out.
UNHASHED_LOSS_DEFAULTS: dict[str, str] = {"warmup": "linear"}
# openai/weak-to-strong's logconf_loss_fn default, used when warmup = "reference" leaves warmup_frac unset.
REFERENCE_WARMUP_FRAC = 0.1


def loss_defaults(name: str, params: dict) -> dict[str, float]:
    """Loss `name`'s defaults given the parameters a recipe set (warmup = "reference" brings its warmup_frac)."""
    defaults = dict(LOSS_DEFAULTS[name])
    if "warmup" in LOSS_CHOICES.get(name, {}) and params.get("warmup") == "reference":
        defaults["warmup_frac"] = REFERENCE_WARMUP_FRAC
    return defaults


def _check_choice(name: str, key: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InputError(
            f"loss '{name}': parameter '{key}' is {value!r}; expected one of {', '.join(repr(c) for c in choices)}."
        )
    return str(value)


def _check_number(name: str, key: str, value: object) -> float:
    lo, hi = RANGES[key]
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(value) or not lo <= value <= hi:  # type: ignore[arg-type]
        bounds = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f"at least {lo:g}"
        raise InputError(f"loss '{name}': parameter '{key}' is {value!r}; expected a number {bounds}.")
    return float(value)  # type: ignore[arg-type]


def resolve_loss(name: str, params: dict) -> dict:
    """The loss's defaults overridden by params, after checking every key and value."""
    if name not in LOSS_DEFAULTS:
        names = sorted(LOSS_DEFAULTS)
        raise InputError(f"unknown loss '{name}'{did_you_mean(name, names)}; allowed: {', '.join(names)}.")
    defaults = loss_defaults(name, params)
    choices = LOSS_CHOICES.get(name, {})
    known = [*defaults, *choices]
    allowed = ", ".join(known) or "none (this loss takes no parameters)"
    merged: dict = dict(defaults)
    for key, value in params.items():
        if key not in known:
            raise InputError(f"loss '{name}': unknown parameter '{key}'{did_you_mean(key, known)}; allowed: {allowed}.")
        if key in choices:
            merged[key] = _check_choice(name, key, value, choices[key])
        else:
            merged[key] = _check_number(name, key, value)
    return merged


def alpha_at(step_frac: float, alpha: float, warmup_frac: float, warmup: str = "linear") -> float:
    """logconf's auxiliary weight at step_frac under the `warmup` schedule (see the module docstring)."""
    if warmup == "reference":  # openai/weak-to-strong loss.py, verbatim: note the jump to alpha after warmup_frac
        return alpha * (1.0 if step_frac > warmup_frac else step_frac)
    if warmup_frac <= 0:
        return alpha
    return alpha * min(1.0, max(0.0, step_frac) / warmup_frac)


def loss_alpha(name: str, params: dict, step_frac: float) -> float | None:
    """The α in effect at step_frac (logconf's warmed-up weight, product's weak exponent), None if the loss has none."""
    merged = resolve_loss(name, params)
    if name == "logconf":
        return alpha_at(step_frac, merged["alpha"], merged["warmup_frac"], merged.get("warmup", "linear"))
    return merged.get("alpha")


def hashed_params(params: dict) -> dict:
    """A loss's parameters as a job key hashes them: those at an UNHASHED_LOSS_DEFAULTS value left out."""
    return without_defaults(params, UNHASHED_LOSS_DEFAULTS)
