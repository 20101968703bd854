"""`python -m relayq` is the `relay` command."""

import sys

from relayq.cli import main

sys.exit(main())
