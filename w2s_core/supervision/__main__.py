"""`python -m w2s_core.supervision RESULTS_DIR`: the background supervisor of a results folder."""

import sys

from w2s_core.supervision.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
