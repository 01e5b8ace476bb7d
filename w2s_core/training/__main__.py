"""`accelerate launch -m w2s_core.training JOB_DIR`: train the job in JOB_DIR (see `w2s_core.training.loop`)."""

import sys
from pathlib import Path

from w2s_core.errors import W2SError
from w2s_core.training.loop import run


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
