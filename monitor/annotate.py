"""The batch tool: detect faces in images, draw them, and tabulate box and pose per face."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2

from monitor.capture import IMAGE_SUFFIXES
from monitor.cascade import Cascade
from monitor.overlay import draw_face
from monitor.progress import progress

log = logging.getLogger(__name__)
RESULT_COLUMNS = ("image", "face", "score", "x1", "y1", "x2", "y2", "yaw_deg", "pitch_deg", "roll_deg")


def list_images(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if src.is_dir():
        images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            return images
        raise FileNotFoundError(f"{src} holds no images (allowed: {' '.join(IMAGE_SUFFIXES)})")
    raise FileNotFoundError(f"{src} does not exist")


def annotate(src: Path, dest: Path, cascade: Cascade) -> dict:
    """Write DEST/<image> with drawings and DEST/results.csv; returns counts for the summary."""
    images = list_images(Path(src))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    counts = {"images": len(images), "faces": 0, "unreadable": 0}
    with (dest / "results.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(RESULT_COLUMNS)
        for path in progress(images, desc="annotate", unit="img"):
            image = cv2.imread(str(path))
            if image is None:
                log.warning("%s is not a readable image: skipped", path)
                counts["unreadable"] += 1
                continue
            faces = cascade.detect(image)
            for i, face in enumerate(faces):
                draw_face(image, face)
                pose = [face.yaw, face.pitch, face.roll] if face.has_pose else [None] * 3
                writer.writerow([path.name, i, *_fmt([face.score, *face.box, *pose])])
            if not faces:
                writer.writerow([path.name] + [""] * (len(RESULT_COLUMNS) - 1))
            counts["faces"] += len(faces)
            cv2.imwrite(str(dest / path.name), image)
    return counts


def _fmt(values: list) -> list[str]:
    return ["" if v is None else f"{float(v):.3f}" for v in values]
