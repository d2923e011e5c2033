"""``python -m bragi`` runs the ``bragi`` command."""

import sys

from bragi.cli import main

sys.exit(main())
