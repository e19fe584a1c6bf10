"""Augmentation with exact label transforms, from the stored context crops to 48 px views.

Geometry is one affine map from the context crop to the network's view, in continuous pixel
coordinates (pixel i covers [i, i+1)), so that the image, the landmarks and the box target move
together exactly. A horizontal flip mirrors the pose (R -> S R S) and swaps the left/right
landmarks (MTCNN orders them as seen in the image); turning the image clockwise by theta turns
the head clockwise too (R -> Rz(theta) R, roll grows by theta).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from monitor.config import TrainingSettings
from monitor.fpnet import INPUT_SIZE
from monitor.rotation import flip_matrix, roll_matrix

# MTCNN landmark order: eye left, eye right, nose, mouth left, mouth right (as seen in the image).
MIRROR_ORDER = np.array([1, 0, 2, 4, 3])
BRIGHTNESS_RANGE = (-40.0, 40.0)    # added to 0..255 pixels
CONTRAST_RANGE = (0.6, 1.4)
CHANNEL_GAIN_RANGE = (0.85, 1.15)   # white balance
BLUR_SIGMA_RANGE = (0.5, 1.2)       # px of the 48 px view
NOISE_SIGMA_RANGE = (2.0, 10.0)     # grey levels
LOW_LIGHT_GAIN_RANGE = (0.15, 0.45)
LOW_LIGHT_GAMMA_RANGE = (1.0, 1.8)
GREY_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], np.float32)
PIXEL_MAX = 255.0


@dataclass
class Geometry:
    flip: bool = False
    theta_deg: float = 0.0              # clockwise on screen
    shift: tuple[float, float] = (0.0, 0.0)   # of the view centre, in box sides
    zoom: float = 1.0                   # > 1 magnifies (the box covers less than the view)


@dataclass
class Labels:
    """One face's targets in the view's units: O-Net's output format."""
    box_reg: np.ndarray     # (4,) corner offsets in box sizes
    landmarks: np.ndarray   # (10,) x1..x5, y1..y5 as fractions of the box
    rotation: np.ndarray    # (3, 3)


def view_affine(context_px: int, context_scale: float, geo: Geometry) -> np.ndarray:
    """2x3 map from context-crop to view coordinates (continuous pixels).

    The view shows the box (the context's central 1/context_scale): mirrored about the context's
    centre line, then turned clockwise by theta about the (shifted) centre and magnified by zoom.
    y points down, so the usual rotation matrix turns clockwise on screen.
    """
    box_px = context_px / context_scale
    t = np.radians(geo.theta_deg)
    a = geo.zoom * INPUT_SIZE / box_px * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    mirror, m = (np.diag([-1.0, 1.0]), np.array([context_px, 0.0])) if geo.flip else (np.eye(2), np.zeros(2))
    c_in = np.full(2, context_px / 2) + np.asarray(geo.shift) * box_px
    c_out = np.full(2, INPUT_SIZE / 2)
    return np.concatenate([a @ mirror, (c_out + a @ (m - c_in))[:, None]], axis=1)


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def transform_labels(labels: Labels, context_px: int, context_scale: float, geo: Geometry) -> Labels:
    """The labels of the view `warp_view` makes with the same geometry."""
    plain = view_affine(context_px, context_scale, Geometry())
    to_context = np.linalg.inv(np.vstack([plain, [0, 0, 1]]))[:2]
    new = view_affine(context_px, context_scale, geo)
    lm = np.stack([labels.landmarks[:5], labels.landmarks[5:]], axis=1) * INPUT_SIZE
    lm = _apply(new, _apply(to_context, lm)) / INPUT_SIZE
    r = labels.box_reg * INPUT_SIZE
    corners = np.array([[r[0], r[1]], [INPUT_SIZE + r[2], INPUT_SIZE + r[3]]])
    size = (corners[1] - corners[0]) * geo.zoom
    centre = _apply(new, _apply(to_context, corners.mean(axis=0, keepdims=True)))[0]
    box_reg = np.concatenate([centre - size / 2, centre + size / 2 - INPUT_SIZE]) / INPUT_SIZE
    rot = labels.rotation
    if geo.flip:
        lm = lm[MIRROR_ORDER]
        rot = flip_matrix(rot)
    rot = roll_matrix(geo.theta_deg) @ rot
    return Labels(box_reg.astype(np.float32), np.concatenate([lm[:, 0], lm[:, 1]]).astype(np.float32), rot)


def warp_view(context: np.ndarray, context_scale: float, geo: Geometry) -> np.ndarray:
    """The 48 px view of a context crop (cv2 works in pixel-centre coordinates, hence the 0.5s)."""
    affine = view_affine(context.shape[1], context_scale, geo)
    affine[:, 2] += affine[:, :2] @ np.full(2, 0.5) - 0.5
    return cv2.warpAffine(context, affine, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def centre_view(contexts: np.ndarray, context_scale: float) -> np.ndarray:
    """(N, 48, 48, 3) un-augmented views, for validation."""
    return np.stack([warp_view(c, context_scale, Geometry()) for c in contexts])


def random_geometry(rng: np.random.Generator, s: TrainingSettings) -> Geometry:
    theta = rng.uniform(-s.max_roll_deg, s.max_roll_deg) if rng.random() < s.roll_prob else 0.0
    return Geometry(flip=bool(rng.random() < s.flip_prob), theta_deg=float(theta),
                    shift=tuple(rng.uniform(-s.jitter, s.jitter, 2)),
                    zoom=float(1.0 + rng.uniform(-s.jitter, s.jitter)))


def photometric(view: np.ndarray, rng: np.random.Generator, s: TrainingSettings) -> np.ndarray:
    """Colour, blur, noise, greyscale and night-like darkness on one (48, 48, 3) view; float32 out."""
    x = view.astype(np.float32)
    if rng.random() < s.colour_prob:
        mean = x.mean()
        x = (x - mean) * rng.uniform(*CONTRAST_RANGE) + mean + rng.uniform(*BRIGHTNESS_RANGE)
        x = x * rng.uniform(*CHANNEL_GAIN_RANGE, size=3).astype(np.float32)
    if rng.random() < s.grey_prob:
        x = np.repeat((x @ GREY_WEIGHTS_BGR)[..., None], 3, axis=2)
    if rng.random() < s.low_light_prob:
        x = np.clip(x, 0, PIXEL_MAX) / PIXEL_MAX
        x = PIXEL_MAX * rng.uniform(*LOW_LIGHT_GAIN_RANGE) * x ** rng.uniform(*LOW_LIGHT_GAMMA_RANGE)
    if rng.random() < s.blur_prob:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*BLUR_SIGMA_RANGE))
    if rng.random() < s.noise_prob:
        x = x + rng.normal(0, rng.uniform(*NOISE_SIGMA_RANGE), x.shape).astype(np.float32)
    return np.clip(x, 0, PIXEL_MAX)
