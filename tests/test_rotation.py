"""The angle convention is the project's contract with its teachers and datasets: pin it."""

import numpy as np
import pytest
import torch

from monitor.rotation import (euler_to_matrix, flip_matrix, geodesic_deg, matrix_to_euler, matrix_to_sixd,
                              mean_rotation, roll_matrix, sixd_to_matrix)

RNG = np.random.default_rng(0)


def test_single_axis_rotations_pin_the_signs():
    # yaw > 0: the face's forward axis (model z) gains +x in the Pose_Para frame
    assert euler_to_matrix(30, 0, 0)[0, 2] == pytest.approx(np.sin(np.radians(30)))
    # pitch > 0 is a rotation about x with R[2,1] = +sin(pitch)
    assert euler_to_matrix(0, 20, 0)[2, 1] == pytest.approx(np.sin(np.radians(20)))
    # roll > 0 is a rotation about z with R[1,0] = +sin(roll)
    assert euler_to_matrix(0, 0, 10)[1, 0] == pytest.approx(np.sin(np.radians(10)))
    for angles in [(30, 0, 0), (0, 20, 0), (0, 0, 10)]:
        assert matrix_to_euler(euler_to_matrix(*angles)) == pytest.approx(angles, abs=1e-9)


def test_order_is_rz_ry_rx():
    y, p, r = 25.0, -15.0, 10.0
    expected = euler_to_matrix(0, 0, r) @ euler_to_matrix(y, 0, 0) @ euler_to_matrix(0, p, 0)
    np.testing.assert_allclose(euler_to_matrix(y, p, r), expected, atol=1e-12)


def test_euler_round_trip_over_the_range():
    for _ in range(500):
        angles = RNG.uniform([-89, -89, -89], [89, 89, 89])
        assert matrix_to_euler(euler_to_matrix(*angles)) == pytest.approx(tuple(angles), abs=1e-6)


def test_gimbal_lock_is_finite():
    yaw, pitch, roll = matrix_to_euler(euler_to_matrix(90, 10, 0))
    assert yaw == pytest.approx(90, abs=1e-6) and roll == 0.0 and np.isfinite(pitch)


def test_sixd_gives_orthonormal_det_one_matrices():
    rots = sixd_to_matrix(torch.from_numpy(RNG.normal(size=(200, 6))))
    eye = torch.eye(3, dtype=rots.dtype).expand(200, 3, 3)
    torch.testing.assert_close(rots.transpose(1, 2) @ rots, eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rots), torch.ones(200, dtype=rots.dtype), atol=1e-10, rtol=0)


def test_sixd_round_trip():
    rot = euler_to_matrix(40, -20, 5)
    back = sixd_to_matrix(torch.from_numpy(matrix_to_sixd(rot))[None])[0].numpy()
    np.testing.assert_allclose(back, rot, atol=1e-12)


def test_flip_negates_yaw_and_roll():
    yaw, pitch, roll = matrix_to_euler(flip_matrix(euler_to_matrix(35, 12, -8)))
    assert (yaw, pitch, roll) == pytest.approx((-35, 12, 8), abs=1e-9)


def test_in_plane_rotation_adds_to_roll():
    yaw, pitch, roll = matrix_to_euler(roll_matrix(15) @ euler_to_matrix(0, 10, 5))
    assert (yaw, pitch, roll) == pytest.approx((0, 10, 20), abs=1e-9)


def test_mean_rotation_and_geodesic():
    a, b = euler_to_matrix(10, 0, 0), euler_to_matrix(30, 0, 0)
    assert matrix_to_euler(mean_rotation(np.stack([a, b])))[0] == pytest.approx(20, abs=1e-6)
    assert geodesic_deg(a, b) == pytest.approx(20, abs=1e-6)
