"""`python -m photopop` is the same as the `photopop` command."""

import sys

from .cli.main import main

sys.exit(main())
