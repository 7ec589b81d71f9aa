"""`python -m export SRC_DIR --task TASK --out DIR`."""

import sys

from export.cli import main

sys.exit(main())
