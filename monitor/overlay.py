"""Drawing faces on frames: box, 5 landmarks and the head-pose axes from the nose.

Shared by `annotate` and the GUI, so both show the same picture. The axes are the rotation's
three axes projected orthographically: x (red) toward the subject's left ear as seen in a frontal
view, y (green) down the face, z (blue) out of the face. Sign conventions are pinned by tests:
yaw > 0 swings the blue axis to the image's left, pitch > 0 lifts it, roll > 0 tips the red axis
down (clockwise).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from monitor.cascade import Face

AXIS_COLOURS = ((0, 0, 255), (0, 200, 0), (255, 80, 0))  # BGR: x red, y green, z blue
BOX_COLOUR = (0, 220, 255)
LANDMARK_COLOUR = (255, 255, 0)
AXIS_LENGTH_OF_FACE = 0.6   # axes drawn this long relative to the face box
LINE_WIDTH_OF_FACE = 0.02


def pose_axes_2d(yaw: float, pitch: float, roll: float, length: float) -> np.ndarray:
    """(3, 2) image-plane offsets of the x, y, z axis tips (y down), from Euler angles in degrees."""
    p, y, r = math.radians(pitch), -math.radians(yaw), math.radians(roll)
    return length * np.array([
        [math.cos(y) * math.cos(r), math.cos(p) * math.sin(r) + math.cos(r) * math.sin(p) * math.sin(y)],
        [-math.cos(y) * math.sin(r), math.cos(p) * math.cos(r) - math.sin(p) * math.sin(y) * math.sin(r)],
        [math.sin(y), -math.cos(y) * math.sin(p)],
    ])


def draw_face(image: np.ndarray, face: Face, label: bool = True) -> None:
    """Draw in place on a BGR image."""
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    size = max(x2 - x1, 1)
    thick = max(1, int(round(size * LINE_WIDTH_OF_FACE)))
    cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, thick)
    for x, y in face.landmarks:
        cv2.circle(image, (int(round(x)), int(round(y))), thick + 1, LANDMARK_COLOUR, -1)
    if face.has_pose:
        nose = face.landmarks[2]
        for tip, colour in zip(pose_axes_2d(face.yaw, face.pitch, face.roll, size * AXIS_LENGTH_OF_FACE),
                               AXIS_COLOURS):
            cv2.line(image, tuple(int(round(v)) for v in nose), tuple(int(round(v)) for v in nose + tip),
                     colour, thick + 1, cv2.LINE_AA)
    if label:
        text = (f"y{face.yaw:+.0f} p{face.pitch:+.0f} r{face.roll:+.0f}" if face.has_pose
                else f"face {face.score:.2f}")
        cv2.putText(image, text, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, max(size / 250, 0.35),
                    BOX_COLOUR, 1, cv2.LINE_AA)
