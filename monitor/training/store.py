"""The work folder: chunk files written atomically, so a killed step never leaves a half file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DEFAULT_WORK = Path.home() / ".cache" / "driver-monitor" / "train"


def work_folder(path: Path | None) -> Path:
    folder = Path(path) if path is not None else DEFAULT_WORK
    repo = Path(__file__).resolve().parents[2]
    if folder.resolve() == repo or repo in folder.resolve().parents:
        raise ValueError(f"work folder {folder} is inside the repository {repo}; choose one outside it")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
