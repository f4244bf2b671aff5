"""``python -m mcrf``: the same as the ``mcrf`` console script."""

import sys

try:
    from mcrf.cli.app import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the CLI: quietly, with the shell's code
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
