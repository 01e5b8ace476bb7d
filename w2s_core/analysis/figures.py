"""A job's final, selected and oracle figures, read from its stored results (older results too).

Every job reports three test figures (see `w2s_core.jobdir.Result`):

    selected  the checkpoint the job kept (`[train] select`): its predictions are written and
              labelled downstream; `test_acc` / `test_auroc`
    final     the last training step's; `final_test_acc` / `final_test_auroc`
    oracle    the best test accuracy over the eval points, the paper's optimistic early-stopping
              figure (it peeks at the test set, so it is reported, never used to select);
              `oracle_test_acc`. There is no oracle AUROC: with `--metric auroc` it is missing.

Jobs recorded before these keys existed have only `test_acc`/`test_auroc`: that figure is both
their final and their selected one (they always kept the last step), and their oracle is missing.
A missing figure is NaN here (null in JSON), never an error.
"""

from __future__ import annotations

import math

from w2s_core.jobdir import Result

FIGURES = ("final", "selected", "oracle")

# metric -> figure -> result keys tried in order (the later ones are older jobs' fallbacks)
_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "acc": {
        "selected": (Result.TEST_ACC,),
        "final": (Result.FINAL_TEST_ACC, Result.TEST_ACC),
        "oracle": (Result.ORACLE_TEST_ACC,),
    },
    "auroc": {"selected": (Result.TEST_AUROC,), "final": (Result.FINAL_TEST_AUROC, Result.TEST_AUROC), "oracle": ()},
}

# metric -> the result key of the selected figure (the one PGR has always used)
METRICS = {metric: keys["selected"][0] for metric, keys in _KEYS.items()}


def figure(results: dict[str, float], metric: str, which: str) -> float:
    """One figure of a job's results, or NaN when the job did not report it."""
    for key in _KEYS[metric][which]:
        if key in results:
            value = results[key]
            return math.nan if value is None else float(value)
    return math.nan
