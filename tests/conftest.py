"""Shared fixtures: small synthetic videos written into tmp_path.

A synthetic clip is a face-like drawing (skin ellipse, eyes, mouth) that slides and nods a
little from frame to frame, with the frame's index painted as the grey level of a corner
block, so a test can tell which frame it got back after JPEG compression.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

# Qt widgets under test never need a display (pytest-qt creates the QApplication later)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MARKER_PX = 16            # side of the corner block that carries the frame index
MARKER_STEP = 8           # grey levels per index: 32 frames stay distinct, far apart for JPEG
MARKER_FRAMES = 256 // MARKER_STEP


def draw_face_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """A BGR frame of the given (width, height) with a face-like pattern that moves with index."""
    width, height = size
    image = np.full((height, width, 3), (70, 90, 60), np.uint8)
    cx = int(width * (0.4 + 0.2 * np.sin(index / 5)))
    cy = int(height * (0.5 + 0.05 * np.sin(index / 3)))
    a, b = width // 6, height // 4
    cv2.ellipse(image, (cx, cy), (a, b), 0, 0, 360, (150, 180, 225), -1)
    for dx in (-a // 2, a // 2):
        cv2.circle(image, (cx + dx, cy - b // 4), max(2, a // 6), (40, 30, 30), -1)
    cv2.ellipse(image, (cx, cy + b // 2), (a // 3, b // 8), 0, 0, 180, (60, 60, 150), 2)
    image[:MARKER_PX, :MARKER_PX] = (index % MARKER_FRAMES) * MARKER_STEP
    return image


def frame_marker(image: np.ndarray) -> int:
    """The index painted by draw_face_frame (modulo MARKER_FRAMES)."""
    return int(round(float(image[2:MARKER_PX - 2, 2:MARKER_PX - 2].mean()) / MARKER_STEP)) % MARKER_FRAMES


def write_face_video(path: Path, frames: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """An MJPG AVI (OpenCV's built-in writer, so no codec is needed) of `frames` synthetic frames."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), f"OpenCV could not write {path}"
    for index in range(frames):
        writer.write(draw_face_frame(index, size))
    writer.release()
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """make_video(frames=24, fps=25.0, name="face.avi", size=(160, 120)) -> path of a new clip."""
    def make(frames: int = 24, fps: float = 25.0, name: str = "face.avi",
             size: tuple[int, int] = (160, 120)) -> Path:
        return write_face_video(tmp_path / name, frames, fps, size)
    return make


@pytest.fixture
def face_frame() -> Callable[[int, tuple[int, int]], np.ndarray]:
    """draw_face_frame(index, (width, height)): one synthetic frame, e.g. for an image folder."""
    return draw_face_frame


@pytest.fixture
def marker() -> Callable[[np.ndarray], int]:
    """The frame index painted into a synthetic frame (see draw_face_frame)."""
    return frame_marker
