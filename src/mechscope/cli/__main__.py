"""`python -m mechscope.cli` (what torchrun launches): the same as the `mechscope` command."""

import sys

from mechscope.cli import main

sys.exit(main())
