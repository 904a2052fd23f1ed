"""``python -m sknas``: the command line (see :mod:`sknas._cli`)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
