"""PyInstaller entry of the command line (the frozen `tunedeck`)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
