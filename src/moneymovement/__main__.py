"""`python -m moneymovement ...`."""

import sys

from moneymovement.cli import main

sys.exit(main())
