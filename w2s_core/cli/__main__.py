"""`python -m w2s_core.cli`: the same as the `w2s` console script."""

import sys

from w2s_core.cli import main

sys.exit(main())
