#!/usr/bin/env python3
"""Regenerate (or ``--check``) the JSON schemas of the flow results in ``schemas/results/``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noa_core.results.schemas import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
