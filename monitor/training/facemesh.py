"""MediaPipe face mesh on face photos: the dense 3-D faces that `train profile` turns into new poses.

This module runs in its own environment (`./setup.sh --mesh` makes `.venv-mesh`), never in the
monitor's: mediapipe 0.10.21, the last release with the face-mesh solution, needs numpy < 2 and
protobuf < 5 and brings its own OpenCV build (opencv-contrib-python) and jax. Kept apart, none of
that touches the monitor's packages. So it imports only numpy, cv2 and mediapipe, and talks to the
caller through files: a JSON job in, an .npz of points out (written atomically).

    .venv-mesh/bin/python -m monitor.training.facemesh JOB.json OUT.npz

JOB.json: {"items": [{"image": path, "box": [x1, y1, x2, y2]}, ...], "context": c, "min_side": px}.
OUT.npz: points (N, 468, 3) float32 in the photo's pixels (x right, y down, z away from the
camera, z in x's scale, as the teachers' README fits them) and found (N,) bool.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

MESH_POINTS = 468   # the refined model adds 10 iris points after these; the pose fit uses the 468


def crop_window(box: np.ndarray, context: float, height: int, width: int) -> tuple[int, int, int, int]:
    """A square around the face box, `context` box sides wide, clipped to the photo.

    MediaPipe runs its own face detector on what it is given; a window a little larger than the
    face lets it find the face without other people in view.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = context * max(box[2] - box[0], box[3] - box[1]) / 2
    x1, y1 = max(int(cx - half), 0), max(int(cy - half), 0)
    x2, y2 = min(int(np.ceil(cx + half)), width), min(int(np.ceil(cy + half)), height)
    return x1, y1, x2, y2


class MeshFitter:
    """MediaPipe's face mesh with the settings the teachers' README measured (static, refined)."""

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        import mediapipe

        self.mesh = mediapipe.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=min_detection_confidence)

    def points(self, image_bgr: np.ndarray, box: np.ndarray, context: float, min_side: int) -> np.ndarray | None:
        """(468, 3) mesh points in the photo's pixels, or None when MediaPipe finds no face."""
        h, w = image_bgr.shape[:2]
        x1, y1, x2, y2 = crop_window(np.asarray(box, np.float64), context, h, w)
        crop = image_bgr[y1:y2, x1:x2]
        if crop.size == 0:
            return None
        scale = max(1.0, min_side / min(crop.shape[:2]))   # small LFW/CUHK faces: the mesh model wants ~192 px
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        ch, cw = crop.shape[:2]
        result = self.mesh.process(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark[:MESH_POINTS]
        pts = np.array([(p.x * cw, p.y * ch, p.z * cw) for p in lm], dtype=np.float64) / scale
        pts[:, 0] += x1
        pts[:, 1] += y1
        return pts.astype(np.float32)


def run_job(job: dict) -> dict[str, np.ndarray]:
    fitter = MeshFitter()
    items = job["items"]
    points = np.zeros((len(items), MESH_POINTS, 3), np.float32)
    found = np.zeros(len(items), bool)
    for i, item in enumerate(items):
        image = cv2.imread(item["image"], cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {item['image']}")
        pts = fitter.points(image, np.array(item["box"]), job["context"], job["min_side"])
        if pts is not None:
            points[i], found[i] = pts, True
    return {"points": points, "found": found}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m monitor.training.facemesh JOB.json OUT.npz", file=sys.stderr)
        return 2
    job_path, out = Path(argv[0]), Path(argv[1])
    arrays = run_job(json.loads(job_path.read_text()))
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
