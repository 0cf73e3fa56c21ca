#!/usr/bin/env python3
"""Compare pyrunc with runc and crun on this machine: latency, memory, scale, masking.

Usage: ``.venv/bin/python hack/bench.py [-n N] [--only run,state,...] [--scale 0,100,1000]
[--runtimes pyrunc,runc,crun] [--json PATH] [--png PATH] [--markdown] [--keep]``

The code lives in ``hack/bench/`` (one module per job; see its ``__init__``). Results are
printed and written, never asserted on; everything the run creates is removed at the end,
also after a failure or Ctrl-C.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.cli import main  # noqa: E402 - the package beside this file

if __name__ == "__main__":
    sys.exit(main())
