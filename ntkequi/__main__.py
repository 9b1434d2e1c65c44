"""``python -m ntkequi ...`` is the ``ntkequi`` command."""
import sys

from .cli import main

sys.exit(main())
