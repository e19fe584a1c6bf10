"""The speed levers must not change what the monitor measures (issue: CPU speed).

Compared with the straightforward path on real frames: tracking (FPNet alone on a predicted crop)
against full detection on the same frame, merging R-Net's duplicate boxes against MTCNN's plain
stage, the P-Net mosaics with a channel-padded P-Net against the plain P-Net run level by level,
the inference FPNet against FPNet, and the per-face post-processing outside torch against the
batched torch version it replaced. Timings are the `bench` command's job, never a test's.
"""

import cv2
import numpy as np
import pytest
import torch

from monitor.cascade import (NMS_ACROSS_SCALES, NMS_FINAL, NMS_PER_SCALE, Cascade, Mosaic, crop_batch, iou, nms,
                             pnet_cells, regress, square, to_tensor)
from monitor.config import CascadeSettings, Config
from monitor.driver import DriverFinder
from monitor.fpnet import (BOX_REG, DEFAULT_WEIGHTS, HEAD_SIZES, LANDMARKS, SIXD, FPNet, InferenceFPNet,
                           face_probability, from_onet, load_fpnet, sixd_to_rotation)
from monitor.nets import PNet, facenet_weights, fold_bgr_input, load_pretrained
from monitor.rotation import euler_to_matrix, matrix_to_euler, matrix_to_sixd, sixd_to_matrix
from monitor.training.evaluate import evaluate_folder
from tests.shared import DATA, needs_shared

needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="weights/fpnet.pt is not trained yet")


@needs_shared
@needs_weights
def test_tracked_frames_agree_with_full_detection():
    config = Config()
    reference = Cascade(config.cascade)
    finder = DriverFinder(Cascade(config.cascade), config.driver)
    capture = cv2.VideoCapture(str(DATA / "video" / "webcam_office_head_motion.avi"))
    overlaps, differences = [], []
    for _ in range(200):
        ok, image = capture.read()
        assert ok
        driver, _, full = finder.process(image)
        if full or driver is None:
            continue
        best = max(reference.detect(image), key=lambda f: iou(f.box, driver.box))
        overlaps.append(iou(best.box, driver.box))
        differences.append([abs(best.yaw - driver.yaw), abs(best.pitch - driver.pitch), abs(best.roll - driver.roll)])
    assert len(overlaps) > 150                         # most frames were tracked
    assert min(overlaps) > 0.8
    assert np.mean(differences, axis=0).max() < 2.0     # degrees; full detection itself jitters about 1


@needs_shared
@needs_weights
def test_merging_rnet_duplicates_keeps_faces_and_loses_no_accuracy():
    # One-sided: which of R-Net's near-duplicate crops FPNet sees moves single large-pose faces by
    # several degrees either way (the -55 deg profile image00251: pitch 28 deg off on the plain
    # path's crop, 4 deg on the merged one), so the 16-image mean moves by up to ~0.3 either way.
    folder = DATA / "aflw2000_sample"
    merged_settings = Config().cascade
    assert merged_settings.rnet_merge_iou < 1.0
    plain = evaluate_folder(folder, Config().replace("cascade", rnet_merge_iou=1.0).cascade)
    merged = evaluate_folder(folder, merged_settings)
    assert plain["detected"] == merged["detected"] == 16
    assert merged["fpnet"]["mean"] < plain["fpnet"]["mean"] + 0.2


class PerLevelCascade(Cascade):
    """The straightforward P-Net stage: facenet-pytorch's unpadded P-Net, one call per pyramid level."""

    def __init__(self, settings: CascadeSettings, **kwargs) -> None:
        super().__init__(settings, **kwargs)
        pnet = PNet()
        pnet.load_state_dict(torch.load(facenet_weights("pnet"), map_location="cpu", weights_only=True))
        fold_bgr_input(pnet.conv1)
        self.pnet = pnet.eval().to(memory_format=torch.channels_last)

    def pnet_stage(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        found, level = [np.zeros((0, 9), np.float32)], image
        for scale in self.pyramid_scales(h, w):
            level = cv2.resize(level, (int(w * scale + 1), int(h * scale + 1)), interpolation=cv2.INTER_AREA)
            reg, prob = (t[0].numpy() for t in self.pnet(to_tensor(level[None])))
            ys, xs = np.nonzero(prob >= self.settings.pnet_threshold)
            cells = np.stack([xs, ys], axis=1).astype(np.float32)
            q1, q2 = np.floor((2 * cells + 1) / scale), np.floor((2 * cells + 12) / scale)
            boxes = np.concatenate([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], axis=1).astype(np.float32)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], NMS_PER_SCALE)])
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], NMS_ACROSS_SCALES)]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        return square(boxes[:, :4] + boxes[:, 5:9] * size)


@pytest.mark.parametrize("frame", [(480, 640), (720, 1280), (1080, 1920), (600, 400), (130, 900)])
@pytest.mark.parametrize("min_face", [20, 40, 80, 200])
def test_mosaics_hold_every_level_once_on_the_cell_grid(frame, min_face):
    settings = CascadeSettings(min_face_px=min_face)
    cascade = Cascade(settings, fpnet_weights=None)
    scales = cascade.pyramid_scales(*frame)
    mosaics = cascade._mosaics(*frame)
    starts = [sum(len(m.sizes) for m in mosaics[:i]) for i in range(len(mosaics))]
    assert [m.first_level for m in mosaics] == starts
    assert sum(len(m.sizes) for m in mosaics) == len(scales)
    for mosaic in mosaics:
        assert mosaic.pixels <= settings.mosaic_max_px or len(mosaic.sizes) == 1
        taken = np.zeros((mosaic.height, mosaic.width), bool)
        for (x, y), (w, h) in zip(mosaic.offsets, mosaic.sizes):
            assert x % 2 == 0 and y % 2 == 0                       # P-Net's stride-2 grid is kept
            assert x + w < mosaic.width and y + h < mosaic.height  # a free pixel right of and below each level
            assert not taken[y:y + h + 1, x:x + w + 1].any()
            taken[y:y + h + 1, x:x + w + 1] = True
        if len(mosaic.sizes) > 1:                                  # no needless waste
            assert sum(w * h for w, h in mosaic.sizes) > 0.6 * mosaic.pixels


def test_pack_single_level():
    mosaic = Mosaic.pack([0.5], [(13, 12)], first_level=3)
    assert (mosaic.width, mosaic.height, mosaic.offsets) == (14, 14, [(0, 0)])
    assert mosaic.cell_level.tolist() == [[0, 0], [-1, -1]]   # a 12 px high level has one row of cells
    boxes, levels = mosaic.proposals(np.zeros((4, 2, 2), np.float32), np.ones((2, 2), np.float32), 0.5)
    assert levels.tolist() == [3, 3]
    assert boxes[:, :4].tolist() == [[2, 2, 24, 24], [6, 2, 28, 24]]   # cell x: (2x + 1) / 0.5 .. (2x + 12) / 0.5


def test_padded_pnet_gives_the_same_outputs():
    padded = load_pretrained(PNet(), "pnet")
    plain = PerLevelCascade(CascadeSettings(), fpnet_weights=None).pnet
    assert padded.conv1.out_channels % 16 == 0 and plain.conv1.out_channels == 10
    image = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (1, 3, 57, 83)).astype(np.float32))
    with torch.inference_mode():
        for a, b in zip(padded(image), plain(image)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_mosaic_cells_equal_per_level_cells_inside_each_level():
    """Only a level's last cell row and column (ceil-mode pooling's partial window) may differ."""
    cascade = Cascade(CascadeSettings(min_face_px=40), fpnet_weights=None)
    image = np.random.default_rng(4).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    scales = cascade.pyramid_scales(240, 320)
    mosaic = Mosaic.pack(scales, [(int(320 * s + 1), int(240 * s + 1)) for s in scales])
    canvas = np.zeros((mosaic.height, mosaic.width, 3), np.uint8)
    levels, level = [], image
    for (x, y), (w, h) in zip(mosaic.offsets, mosaic.sizes):
        level = cv2.resize(level, (w, h), interpolation=cv2.INTER_AREA)
        levels.append(level)
        canvas[y:y + h, x:x + w] = level
    with torch.inference_mode():
        whole = cascade.pnet(to_tensor(canvas[None]))[1][0].numpy()
        for (x, y), (w, h), level in zip(mosaic.offsets, mosaic.sizes, levels):
            alone = cascade.pnet(to_tensor(level[None]))[1][0].numpy()
            assert alone.shape == (pnet_cells(h), pnet_cells(w))
            inside = whole[y // 2:y // 2 + alone.shape[0], x // 2:x // 2 + alone.shape[1]]
            np.testing.assert_allclose(inside[:-1, :-1], alone[:-1, :-1], atol=1e-5)


def _images():
    return sorted((DATA / "faces" / "drivface").glob("*.jpg")) + sorted((DATA / "aflw2000_sample").glob("*.jpg"))


@needs_shared
@needs_weights
@pytest.mark.parametrize("min_face", [80, 40])   # 40: the largest 640x480 level is a mosaic of its own
def test_mosaic_finds_the_same_faces_and_poses_as_per_level_pnet(min_face):
    settings = Config().replace("cascade", min_face_px=min_face).cascade
    fast, plain = Cascade(settings), PerLevelCascade(settings)
    images = _images()
    assert len(images) >= 20
    for path in images:
        image = cv2.imread(str(path))
        with torch.inference_mode():
            ours, reference = fast.detect(image), plain.detect(image)
        assert len(ours) == len(reference), path.name
        for face in reference:
            match = max(ours, key=lambda f: iou(f.box, face.box))
            assert iou(match.box, face.box) > 0.99, path.name
            assert max(abs(match.yaw - face.yaw), abs(match.pitch - face.pitch), abs(match.roll - face.roll)) < 0.2


@pytest.mark.parametrize("trained", [False, True])
def test_inference_fpnet_gives_fpnet_outputs(trained):
    if trained and not DEFAULT_WEIGHTS.is_file():
        pytest.skip("weights/fpnet.pt is not present")
    net = load_fpnet()[0] if trained else from_onet().eval()
    fast = InferenceFPNet(net).to(memory_format=torch.channels_last)
    crops = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (3, 48, 48, 3)).astype(np.float32))
    with torch.inference_mode():
        heads, reference = fast(crops.permute(0, 3, 1, 2)).numpy(), net(crops.permute(0, 3, 1, 2).contiguous())
    ours = {"box_reg": heads[:, BOX_REG], "landmarks": heads[:, LANDMARKS], "face_prob": face_probability(heads),
            "sixd": heads[:, SIXD]}
    for name, value in ours.items():
        np.testing.assert_allclose(value, getattr(reference, name).numpy(), atol=1e-4, rtol=1e-4, err_msg=name)


def test_sixd_to_rotation_is_the_torch_maths():
    rng = np.random.default_rng(6)
    sixd = (rng.normal(size=(2000, 6)) * rng.uniform(0.1, 10, size=(2000, 1))).astype(np.float32)
    sixd[:3] = [[1, 0, 0, 0, 1, 0], [0, 0, 1, 0, 1, 0], [2, 0, 0, 3, 4, 0]]
    torch_rotations = sixd_to_matrix(torch.from_numpy(sixd.astype(np.float64))).numpy()
    for v, expected in zip(sixd, torch_rotations):
        ours = sixd_to_rotation(v)
        np.testing.assert_allclose(ours, expected, atol=1e-12)
        np.testing.assert_allclose(ours @ ours.T, np.eye(3), atol=1e-12)


def test_sixd_to_rotation_angles_equal_the_float32_torch_path():
    """Euler angles as the cascade computed them before (torch, float32) to 1e-4 degrees, on 6D
    outputs like a trained head's: a rotation's first two columns, scaled and perturbed."""
    rng = np.random.default_rng(7)
    poses = rng.uniform([-80, -60, -45], [80, 60, 45], size=(2000, 3))
    sixd = np.array([matrix_to_sixd(euler_to_matrix(*pose)) for pose in poses])
    sixd = sixd * rng.uniform(0.5, 2, size=(2000, 1)) + rng.normal(scale=0.05, size=sixd.shape)
    sixd = sixd.astype(np.float32)
    before = sixd_to_matrix(torch.from_numpy(sixd)).numpy().astype(np.float64)
    for v, rotation in zip(sixd, before):
        np.testing.assert_allclose(matrix_to_euler(sixd_to_rotation(v)), matrix_to_euler(rotation), atol=1e-4)


def _plain_output(cascade: Cascade, image: np.ndarray, boxes: np.ndarray) -> list[dict]:
    """The post-processing as it was: torch softmax and 6D -> matrix on the whole batch."""
    with torch.inference_mode():
        heads = cascade.fpnet(to_tensor(crop_batch(image, boxes, 48)))
    face, box_reg, lm, sixd = heads.split(HEAD_SIZES, 1)
    prob = torch.softmax(face, dim=1)[:, 1].numpy()
    keep = prob > cascade.settings.fpnet_threshold
    boxes, scores, lm = boxes[keep], prob[keep], lm.numpy()[keep]
    wh = (boxes[:, 2:4] - boxes[:, 0:2] + 1)[:, None, :]
    landmarks = np.stack([lm[:, :5], lm[:, 5:]], axis=2) * wh + boxes[:, None, 0:2] - 1
    final = regress(boxes, box_reg.numpy()[keep])
    rotations = FPNet.rotation(sixd).numpy()[keep].astype(np.float64)
    return [{"box": final[i], "score": float(scores[i]), "landmarks": landmarks[i], "crop_box": boxes[i],
             "angles": matrix_to_euler(rotations[i])} for i in nms(final, scores, NMS_FINAL, mode="min")]


def test_cascade_output_equals_the_plain_post_processing(tmp_path):
    """Random FPNet weights (so that the pose head gives every angle) on random crops, some off the image."""
    torch.manual_seed(7)
    weights = tmp_path / "fpnet.pt"
    torch.save(FPNet().state_dict(), weights)
    cascade = Cascade(CascadeSettings(fpnet_threshold=0.3), fpnet_weights=weights)
    assert cascade.pose_trained
    rng = np.random.default_rng(8)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    compared = 0
    for count in (1, 1, 2, 5, 12):
        corner = rng.uniform(-30, 280, size=(count, 2))
        boxes = square(np.concatenate([corner, corner + rng.uniform(20, 120, size=(count, 1))], axis=1))
        ours, plain = cascade.follow(image, boxes), _plain_output(cascade, image, boxes)
        assert len(ours) == len(plain)
        for face, expected in zip(ours, plain):
            np.testing.assert_allclose(face.box, expected["box"], atol=1e-4)
            np.testing.assert_allclose(face.crop_box, expected["crop_box"], atol=0)
            np.testing.assert_allclose(face.landmarks, expected["landmarks"], atol=1e-4)
            assert face.score == pytest.approx(expected["score"], abs=1e-6)
            assert face.yaw == pytest.approx(expected["angles"][0], abs=1e-4)
            if abs(face.yaw) < 85:
                np.testing.assert_allclose((face.pitch, face.roll), expected["angles"][1:], atol=1e-4)
            compared += 1
    assert compared >= 10


def test_fpnet_bench_floor_counts_fpnets_own_multiply_adds():
    from monitor.bench import ONET_PRODUCTS, fpnet_bench

    net, macs = FPNet().eval(), []

    def count(module, inputs, output):
        weight = module.weight
        per_output = weight[0].numel() if isinstance(module, torch.nn.Conv2d) else weight.shape[1]
        macs.append(output.numel() * per_output)
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(count)
    with torch.no_grad():
        net(torch.zeros(1, 3, 48, 48))
    threads = torch.get_num_threads()
    try:
        result = fpnet_bench(threads=1, calls=10)
    finally:
        torch.set_num_threads(threads)
    assert result["multiply_adds"] == sum(macs) == sum(m * k * n for m, k, n in ONET_PRODUCTS)
    assert {"fpnet_ms", "fpnet_module_ms", "matmul_floor_ms"} <= set(result) and result["threads"] == 1
