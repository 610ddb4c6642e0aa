"""``python -m mmiobus``: the same as the ``mmiobus`` command."""

import sys

from mmiobus.cli.main import main

sys.exit(main())
