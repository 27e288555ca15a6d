"""``python -m router_retriever.cli``: the same as the ``retriever`` command."""

import sys

from router_retriever.cli import main

sys.exit(main())
