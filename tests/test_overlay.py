import numpy as np
import pytest

from monitor.cascade import Face
from monitor.overlay import AXIS_COLOURS, draw_face, pose_axes_2d
from monitor.rotation import euler_to_matrix


def test_axes_follow_the_pose_convention():
    x, y, z = pose_axes_2d(0, 0, 0, 100)
    assert x == pytest.approx([100, 0]) and y == pytest.approx([0, 100]) and z == pytest.approx([0, 0], abs=1e-9)
    assert pose_axes_2d(30, 0, 0, 100)[2][0] < -40      # yaw > 0: nose axis swings to the image's left
    assert pose_axes_2d(0, 20, 0, 100)[2][1] < -30      # pitch > 0: nose axis goes up
    assert pose_axes_2d(0, 0, 15, 100)[0][1] > 20       # roll > 0: x axis tips down (clockwise)


def test_draw_face_draws_box_landmarks_and_axes():
    image = np.zeros((200, 200, 3), np.uint8)
    face = Face(box=np.array([50, 50, 150, 150.0]), score=0.99,
                landmarks=np.array([[80, 90], [120, 90], [100, 110], [85, 130], [115, 130.0]]),
                rotation=euler_to_matrix(30, 0, 0), yaw=30.0, pitch=0.0, roll=0.0)
    draw_face(image, face)
    assert image[50, 100].any()                                    # box edge
    assert tuple(image[110, 70]) == AXIS_COLOURS[2]                 # blue axis runs left of the nose
    untrained = Face(box=face.box, score=0.9, landmarks=face.landmarks, rotation=None)
    plain = np.zeros_like(image)
    draw_face(plain, untrained)
    assert not (plain == np.array(AXIS_COLOURS[2], np.uint8)).all(axis=2).any()   # no axes without pose
