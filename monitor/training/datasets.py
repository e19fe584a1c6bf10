"""Reading ../shared/data: face annotations, background images, and the train/validation split.

The split is decided per source image from a hash of its name, before anything is mined, so
every crop of one photo lands on the same side and a rerun (or a resumed run) splits the same way.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FACE_SOURCES = ("net_7876", "lfw", "drivface")
BACKGROUND_LISTS = ("negatives", "negatives/scenes")
EVAL_ONLY = "aflw2000_sample"
_HASH_BUCKETS = 10_000


@dataclass
class FaceRecord:
    source: str
    image: str              # file name inside faces/<source>/
    box: np.ndarray         # (4,) annotated box (tight CUHK or DrivFace box)
    landmarks: np.ndarray   # (5, 2) in MTCNN order as seen in the image
    pose_class: int         # MTFL 1..5, 0 when not labelled
    validation: bool

    @property
    def key(self) -> str:
        return f"{self.source}/{self.image}"


def is_validation(key: str, fraction: float) -> bool:
    return zlib.crc32(key.encode()) % _HASH_BUCKETS < fraction * _HASH_BUCKETS


def read_faces(data: Path, source: str, validation_fraction: float) -> list[FaceRecord]:
    path = Path(data) / "faces" / source / "annotations.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected ../shared/data/faces/<source>/annotations.csv)")
    records = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            lm = np.array([[float(row[f"lm{i}x"]), float(row[f"lm{i}y"])] for i in range(1, 6)])
            box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
            pose = int(row["pose_class"]) if row.get("pose_class") else 0
            key = f"{source}/{row['image']}"
            records.append(FaceRecord(source, row["image"], box, lm, pose,
                                      is_validation(key, validation_fraction)))
    return records


def read_backgrounds(data: Path) -> list[Path]:
    """Face-free images: DTD textures, 15-Scene scenes and DrivFace car interiors."""
    paths = []
    for folder in BACKGROUND_LISTS:
        listing = Path(data) / folder / "list.csv"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing} not found")
        with listing.open(newline="") as f:
            paths += [listing.parent / row["image"] for row in csv.DictReader(f)]
    return paths
