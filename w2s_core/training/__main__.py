"""`python -m w2s_core.training JOB_DIR`: run the job in JOB_DIR by its stage.

A job of one process is started so, directly; one of several processes (or sharded, or with the
recipe's own accelerate config) by `accelerate launch -m w2s_core.training JOB_DIR`
(w2s_core/supervision/launch_config.py says which, and why: `accelerate launch` costs its own process,
which imports torch, only to start this one). Started directly, the trainer first gives itself the
environment accelerate's simple launcher would have given it (`launcher_environment`), before anything
imports torch: the same environment, so the same behaviour and results (torch's CPU threads, above all,
stay 1 unless OMP_NUM_THREADS says otherwise, as under the launcher). Nothing this module imports at
its top imports torch (tests/test_launch_render.py checks).

A job.json without a `stage` is a trained job (`w2s_core.training.loop`); `"prompt"` scores label
words with no training (`w2s_core.training.prompt`); `"generative"` finetunes the model on text as a
language model and saves it for its downstream jobs (`w2s_core.training.generative`).
"""

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from w2s_core.errors import W2SError
from w2s_core.jobdir import JobDir

STAGES = ("prompt", "generative")
# What `accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no`
# puts in its one process's environment (accelerate.utils.launch.prepare_simple_launcher_cmd_env, as
# accelerate 1.x's _validate_launch_command fills the arguments those flags leave out: no --cpu, no
# debug, no gpu_ids, no CPU affinity), besides OMP_NUM_THREADS (`omp_num_threads`).
SIMPLE_LAUNCHER_ENV = {
    "ACCELERATE_USE_CPU": "False",
    "ACCELERATE_MIXED_PRECISION": "no",
    "ACCELERATE_DYNAMO_BACKEND": "NO",
    "ACCELERATE_DYNAMO_MODE": "default",
    "ACCELERATE_DYNAMO_USE_FULLGRAPH": "False",
    "ACCELERATE_DYNAMO_USE_DYNAMIC": "False",
    "ACCELERATE_DYNAMO_USE_REGIONAL_COMPILATION": "False",
}


def omp_num_threads(environ: MutableMapping[str, str]) -> str:
    """OMP_NUM_THREADS as accelerate's launcher sets it: `get_int_from_env(["OMP_NUM_THREADS"], 1)`, the
    environment's whole number when it holds one >= 0, else 1 (its `--cpu` branch, which would use the
    physical cores instead, is not taken: ACCELERATE_USE_CPU is False). A value that is no number is
    kept as it is (the launcher would refuse to start; torch ignores it)."""
    value = environ.get("OMP_NUM_THREADS")
    if value is None:
        return "1"
    try:
        threads = int(value)
    except ValueError:
        return value
    return str(threads if threads >= 0 else 1)


def launcher_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give this process the environment `accelerate launch` gives its one process (SIMPLE_LAUNCHER_ENV and
    OMP_NUM_THREADS), for a trainer started directly; before torch is imported, as OMP_NUM_THREADS is read
    when torch loads. Each ACCELERATE_* variable is set only when absent: under a real `accelerate
    launch` (several processes, a config of its own) the launcher's values stay; OMP_NUM_THREADS keeps
    its value there too (accelerate already wrote the whole number this rule gives)."""
    for key, value in SIMPLE_LAUNCHER_ENV.items():
        environ.setdefault(key, value)
    environ["OMP_NUM_THREADS"] = omp_num_threads(environ)


def run(job_dir: Path) -> None:
    """Dispatch on job.json's `stage`; each stage's module is imported only when it runs."""
    from w2s_core.training.device import check_device  # issue 14: a GPU slot without CUDA fails here

    check_device()
    stage = JobDir(job_dir).read_spec().get("stage")
    if stage is None:
        from w2s_core.training.loop import run as train
    elif stage == "prompt":
        from w2s_core.training.prompt import run as train
    elif stage == "generative":
        from w2s_core.training.generative import run as train
    else:
        raise W2SError(f"{job_dir / 'job.json'}: unknown stage {stage!r}; expected none or one of {', '.join(STAGES)}")
    train(job_dir)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m w2s_core.training JOB_DIR  (or accelerate launch ... -m w2s_core.training JOB_DIR)")
    launcher_environment()  # first: nothing has imported torch yet
    try:
        run(Path(sys.argv[1]))
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
