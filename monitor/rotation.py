"""Rotation maths in the AFLW2000 / 300W-LP `Pose_Para` convention (degrees at the edges).

Pinned by `../shared/teachers/README.md` and by tests/test_rotation.py:
- yaw > 0: the face turns toward the image's left; pitch > 0: chin up; roll > 0: clockwise in the image.
- R = Rz(roll) @ Ry(yaw) @ Rx(pitch), as 6DRepNet's `get_R`.
- pitch = atan2(R21, R22), yaw = atan2(-R20, hypot(R00, R10)), roll = atan2(R10, R00).
- a horizontal image flip maps R to S R S with S = diag(-1, 1, 1): (pitch, yaw, roll) -> (pitch, -yaw, -roll).

The 6D representation (Zhou et al. 2019, used by 6DRepNet) is the first two columns of R; Gram-Schmidt
turns any 6 numbers back into a rotation, which is why a network can regress it without
discontinuities.
"""

from __future__ import annotations

import numpy as np
import torch

_GIMBAL_EPS = 1e-6
FLIP = np.diag([-1.0, 1.0, 1.0])


def euler_to_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    p, y, r = np.radians([pitch_deg, yaw_deg, roll_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_euler(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees; at |yaw| = 90 roll is set to 0 (gimbal lock)."""
    sy = float(np.hypot(rot[0, 0], rot[1, 0]))
    if sy < _GIMBAL_EPS:
        pitch = np.arctan2(-rot[1, 2], rot[1, 1])
        roll = 0.0
    else:
        pitch = np.arctan2(rot[2, 1], rot[2, 2])
        roll = np.arctan2(rot[1, 0], rot[0, 0])
    yaw = np.arctan2(-rot[2, 0], sy)
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """(N, 6) -> (N, 3, 3): Gram-Schmidt of the two 3-vectors, third column by cross product."""
    a1, a2 = sixd[:, 0:3], sixd[:, 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(dim=1, keepdim=True) * b1, dim=1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=2)


def matrix_to_sixd(rot: np.ndarray) -> np.ndarray:
    """The first two columns, as (6,) = [col0, col1]: the inverse of `sixd_to_matrix` on rotations."""
    return np.concatenate([rot[:, 0], rot[:, 1]])


def flip_matrix(rot: np.ndarray) -> np.ndarray:
    """The pose of the mirrored image."""
    return FLIP @ rot @ FLIP


def roll_matrix(theta_deg: float) -> np.ndarray:
    """Rz(theta): rotating the image clockwise by theta changes the pose to Rz(theta) @ R."""
    return euler_to_matrix(0.0, 0.0, theta_deg)


def mean_rotation(rots: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Average of rotation matrices projected back onto SO(3) with an SVD (teacher ensembling)."""
    m = np.average(rots, axis=0, weights=weights)
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def geodesic_deg(r1: np.ndarray, r2: np.ndarray) -> float:
    """Angle of the rotation taking r1 to r2."""
    cos = (np.trace(r1.T @ r2) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
