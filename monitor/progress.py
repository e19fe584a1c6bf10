"""Progress bars on long work, on stderr, only when stderr is a terminal (logs stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None) -> Iterator[T]:
    return iter(tqdm(items, desc=desc, unit=unit, total=total, disable=not sys.stderr.isatty(),
                     file=sys.stderr, dynamic_ncols=True))
