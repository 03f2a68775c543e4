"""`python -m forecasts ...` — see forecasts.cli."""

import sys

from forecasts.cli import main

sys.exit(main())
