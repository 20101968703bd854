"""``python -m relayq.client``: the client-side ``relay`` commands without the server parts."""

import sys

from relayq.client.cli import main

sys.exit(main())
