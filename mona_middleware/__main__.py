"""``python -m mona_middleware``: the same CLI as the ``mona-middleware`` script."""

import sys

from ._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
