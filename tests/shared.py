"""Where `../shared` (data and teachers beside the repository) is, and a skip when it is absent."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
TEACHERS = SHARED / "teachers"

needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
