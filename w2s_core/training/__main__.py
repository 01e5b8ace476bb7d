"""`accelerate launch -m w2s_core.training JOB_DIR`: run the job in JOB_DIR by its stage.

A job.json without a `stage` is a trained job (`w2s_core.training.loop`); `"prompt"` scores label
words with no training (`w2s_core.training.prompt`); `"generative"` finetunes the model on text as a
language model and saves it for its downstream jobs (`w2s_core.training.generative`).
"""

import sys
from pathlib import Path

from w2s_core.errors import W2SError
from w2s_core.jobdir import JobDir

STAGES = ("prompt", "generative")


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
        sys.exit("usage: accelerate launch -m w2s_core.training JOB_DIR")
    try:
        run(Path(sys.argv[1]))
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
