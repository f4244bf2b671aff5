"""``python -m mcrf``: the same as the ``mcrf`` console script."""

from mcrf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
