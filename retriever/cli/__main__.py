"""``python -m retriever.cli``: the same as the ``retriever`` command."""

import sys

from retriever.cli import main

sys.exit(main())
