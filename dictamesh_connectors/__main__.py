"""``python -m dictamesh_connectors``: the ``dictamesh-connectors`` command."""

import sys

from dictamesh_connectors.cli import main

if __name__ == "__main__":
    sys.exit(main())
