"""`python -m tests.soak --minutes 30`: the long soak run."""

import sys

from tests.soak.harness import main

sys.exit(main())
