#!/usr/bin/env python3
"""Entry point: `python run_monitor.py --help` lists the commands."""

import sys

from monitor.cli import main

if __name__ == "__main__":
    sys.exit(main())
