import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from monitor.cascade import Cascade, Face, crop_batch, iou, nms, square
from monitor.config import CascadeSettings, DriverSettings
from monitor.driver import choose_driver
from monitor.fpnet import from_onet
from monitor.nets import PNet, RNet, facenet_weights, load_pretrained
from tests.shared import DATA, needs_shared

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_boxes.json").read_text())


@pytest.fixture(scope="module")
def cascade():
    return Cascade(CascadeSettings(), fpnet_weights=None)


def _rgb_normalised(bgr):
    return (torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1)[None].float() - 127.5) * 0.0078125


def test_folded_nets_equal_facenet_nets_on_rgb_input():
    from facenet_pytorch.models.mtcnn import ONet as FacenetONet, PNet as FacenetPNet, RNet as FacenetRNet

    rng = np.random.default_rng(1)
    for ours, theirs, size in [(load_pretrained(PNet(), "pnet"), FacenetPNet(), 40),
                               (load_pretrained(RNet(), "rnet"), FacenetRNet(), 24),
                               (from_onet().eval(), FacenetONet(), 48)]:
        bgr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        with torch.no_grad():
            mine = ours(torch.from_numpy(bgr).permute(2, 0, 1)[None].float())
            ref = theirs.eval()(_rgb_normalised(bgr))
        if size == 48:
            torch.testing.assert_close(mine.box_reg, ref[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(mine.landmarks, ref[1], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(mine.face_prob, ref[2][:, 1], atol=1e-4, rtol=1e-4)
        else:
            torch.testing.assert_close(mine[0], ref[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(mine[1], ref[1][:, 1], atol=1e-4, rtol=1e-4)


def test_untrained_fpnet_reports_no_pose(cascade):
    assert cascade.pose_trained is False


@pytest.mark.parametrize("shape", [(480, 640, 3), (240, 320, 3), (50, 50, 3), (20, 600, 3)])
def test_no_faces_in_noise_or_flat_images(cascade, shape):
    rng = np.random.default_rng(0)
    assert cascade.detect(np.zeros(shape, np.uint8)) == []
    assert cascade.detect(rng.integers(0, 256, shape, dtype=np.uint8)) == []


def test_image_smaller_than_min_face_has_no_pyramid(cascade):
    assert cascade.pyramid_scales(60, 60) == []
    assert cascade.detect(np.full((60, 60, 3), 128, np.uint8)) == []


def test_pyramid_starts_at_min_face_and_shrinks():
    scales = Cascade(CascadeSettings(min_face_px=80), fpnet_weights=None).pyramid_scales(480, 640)
    assert scales[0] == pytest.approx(12 / 80)
    assert all(b < a for a, b in zip(scales, scales[1:]))
    assert 480 * scales[-1] >= 12 > 480 * scales[-1] * 0.709


def test_nms_union_and_min():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 6, 6]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert list(nms(boxes, scores, 0.5)) == [3, 0, 2]
    assert list(nms(boxes, scores, 0.7, mode="min")) == [3, 2]


def test_square_and_crop_pad_outside_with_black():
    assert square(np.array([[0, 0, 10, 20]], np.float32)).tolist() == [[-5, 0, 15, 20]]
    image = np.full((10, 10, 3), 200, np.uint8)
    crop = crop_batch(image, np.array([[-10, 0, 9, 9]], np.float32), 20)[0]
    assert crop[:, :9].max() == 0 and crop[:, 11:].min() == 200


def _face(box, score=0.99):
    return Face(box=np.array(box, float), score=score, landmarks=np.zeros((5, 2)), rotation=None)


def test_driver_is_followed_not_the_biggest_face():
    settings = DriverSettings()
    driver = _face([300, 200, 400, 300])
    passenger = _face([20, 20, 260, 260])
    assert choose_driver([passenger, driver], (640, 480), np.array([305, 205, 405, 305.0]), settings) is driver


def test_new_driver_is_large_and_central():
    settings = DriverSettings(centre_weight=0.5)
    central = _face([270, 190, 370, 290])
    corner = _face([0, 0, 120, 120])
    assert choose_driver([corner, central], (640, 480), None, settings) is central
    assert choose_driver([corner, central], (640, 480), None, DriverSettings(centre_weight=0.0)) is corner
    assert choose_driver([], (640, 480), None, settings) is None


@needs_shared
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_boxes_on_sample_images(cascade, name):
    faces = cascade.detect(cv2.imread(str(DATA / name)))
    assert len(faces) == len(GOLDEN[name])
    for face, box in zip(faces, GOLDEN[name]):
        assert iou(face.box, np.array(box)) > 0.98
        # landmarks lie inside the box in MTCNN order: eyes above the mouth, left before right
        lm = face.landmarks
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0] and lm[:2, 1].max() < lm[3:, 1].min()


@needs_shared
def test_same_faces_as_facenet_mtcnn(cascade):
    from facenet_pytorch import MTCNN

    reference = MTCNN(keep_all=True, min_face_size=80, device="cpu")
    for name in sorted(GOLDEN)[:8]:
        image = cv2.imread(str(DATA / name))
        boxes, _ = reference.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ours = cascade.detect(image)
        assert len(ours) == len(boxes)
        assert iou(ours[0].box, np.asarray(boxes[0], float)) > 0.85


@needs_shared
def test_follow_finds_the_face_from_a_shifted_crop(cascade):
    image = cv2.imread(str(DATA / "aflw2000_sample" / "image00050.jpg"))
    face = cascade.detect(image)[0]
    followed = cascade.follow(image, (face.crop_box + np.array([8, -6, 8, -6]))[None])
    assert followed and iou(followed[0].box, face.box) > 0.85
    assert cascade.follow(np.zeros_like(image), face.crop_box[None]) == []
