"""`python -m mechscope ...`: the same command line as the `mechscope` script."""

import sys

from mechscope.cli import main

sys.exit(main())
