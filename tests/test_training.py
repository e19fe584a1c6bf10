"""The FPNet training pipeline: IoU labelling, exact augmentation labels, teacher preprocessing,
losses, and a tiny end-to-end training run that must learn and resume exactly."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from monitor.config import TrainingSettings
from monitor.rotation import FLIP, euler_to_matrix, geodesic_deg, matrix_to_euler, roll_matrix
from monitor.training.augment import Geometry, Labels, MIRROR_ORDER, transform_labels, warp_view
from monitor.training.dataset import Samples, make_batch, sampling_weights
from monitor.training.losses import multitask_loss, ohem, rotation_loss
from monitor.training.mining import (CONTEXT_PX, NEGATIVE, PART, POSITIVE, IGNORE, apply_box_map, classify,
                                     fit_box_map, inside_negatives, iou_many, match_reference)
from monitor.training.teachers import fsanet_crop, fsanet_input, fuse
from tests.shared import DATA, TEACHERS, needs_shared

SCALE = TrainingSettings().context_scale


# --- mining -------------------------------------------------------------------------------------

def test_proposals_are_labelled_by_iou_with_the_reference():
    ref = np.array([0.0, 0.0, 100.0, 100.0])
    boxes = np.array([[0, 0, 100, 100], [10, 0, 110, 100], [30, 0, 130, 100],
                      [50, 0, 150, 100], [80, 0, 180, 100]], dtype=float)
    ious = iou_many(boxes, ref)
    np.testing.assert_allclose(ious, [1.0, 90 / 110, 70 / 130, 50 / 150, 20 / 180])
    kinds = classify(ious, TrainingSettings())
    assert kinds.tolist() == [POSITIVE, POSITIVE, PART, IGNORE, NEGATIVE]


def test_classify_rejects_inconsistent_thresholds():
    with pytest.raises(ValueError, match="negative_iou <= part_iou <= positive_iou"):
        classify(np.array([0.5]), TrainingSettings(part_iou=0.8))


def test_inside_negatives_sit_on_eyes_and_mouth_and_are_not_faces():
    ref = np.array([0.0, 0.0, 100.0, 100.0])
    lm = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], dtype=float)
    boxes = inside_negatives(ref, lm, 0.45, 0.3)
    assert len(boxes) == 4
    np.testing.assert_allclose((boxes[:, :2] + boxes[:, 2:]) / 2, lm[[0, 1, 3, 4]])
    assert (iou_many(boxes, ref) < 0.3).all()


def test_reference_is_the_detection_holding_the_landmarks_and_box_map_round_trips():
    lm = np.array([[40, 40], [60, 40], [50, 50], [42, 60], [58, 60]], dtype=float)
    det = np.array([[100, 100, 150, 150], [30, 25, 72, 75], [20, 20, 80, 80]], dtype=float)
    assert match_reference(det, np.array([35, 35, 65, 68.0]), lm) == 1
    assert match_reference(det[:1], np.array([35, 35, 65, 68.0]), lm) is None
    annotated = np.array([[10, 10, 50, 60], [0, 0, 80, 100.0]])
    reference = np.array([[8, 5, 52, 65], [-4, -10, 84, 110.0]])
    params = fit_box_map(annotated, reference)
    for a, r in zip(annotated, reference):
        np.testing.assert_allclose(apply_box_map(a, params), r, atol=1e-4)


# --- augmentation labels ------------------------------------------------------------------------

def _labels():
    lm = np.array([0.3, 0.7, 0.5, 0.35, 0.65, 0.35, 0.36, 0.55, 0.75, 0.74])
    return Labels(np.array([0.05, -0.02, 0.03, 0.04]), lm, euler_to_matrix(25.0, -10.0, 7.0))


def test_flip_mirrors_the_pose_exactly_and_swaps_left_right_landmarks():
    labels = _labels()
    out = transform_labels(labels, CONTEXT_PX, SCALE, Geometry(flip=True))
    np.testing.assert_allclose(out.rotation, FLIP @ labels.rotation @ FLIP, atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(out.rotation), (-25.0, -10.0, -7.0), atol=1e-9)
    # x is mirrored (x -> 1 - x) and the image-left eye/mouth corner become the image-right ones
    np.testing.assert_allclose(out.landmarks[:5], 1 - labels.landmarks[:5][MIRROR_ORDER], atol=1e-6)
    np.testing.assert_allclose(out.landmarks[5:], labels.landmarks[5:][MIRROR_ORDER], atol=1e-6)
    np.testing.assert_allclose(out.box_reg, [-0.03, -0.02, -0.05, 0.04], atol=1e-6)
    back = transform_labels(out, CONTEXT_PX, SCALE, Geometry(flip=True))
    np.testing.assert_allclose(back.rotation, labels.rotation, atol=1e-12)
    np.testing.assert_allclose(back.landmarks, labels.landmarks, atol=1e-6)


def test_clockwise_image_rotation_adds_roll_exactly():
    labels = _labels()
    out = transform_labels(labels, CONTEXT_PX, SCALE, Geometry(theta_deg=20.0))
    np.testing.assert_allclose(out.rotation, roll_matrix(20.0) @ labels.rotation, atol=1e-12)
    assert geodesic_deg(out.rotation, labels.rotation) == pytest.approx(20.0, abs=1e-6)
    # a frontal head turned clockwise in the image has its roll grow by exactly theta
    frontal = Labels(labels.box_reg, labels.landmarks, euler_to_matrix(0.0, 0.0, 5.0))
    turned = transform_labels(frontal, CONTEXT_PX, SCALE, Geometry(theta_deg=12.0))
    np.testing.assert_allclose(matrix_to_euler(turned.rotation), (0.0, 0.0, 17.0), atol=1e-9)


@pytest.mark.parametrize("geo", [Geometry(), Geometry(flip=True), Geometry(theta_deg=20.0),
                                 Geometry(flip=True, theta_deg=-15.0, shift=(0.03, -0.02), zoom=1.04)])
def test_landmark_labels_follow_the_warped_image(geo):
    """Draw each landmark as a dot; after the warp the dot's centroid is where the label says."""
    labels = _labels()
    view_px = CONTEXT_PX / SCALE
    margin = (CONTEXT_PX - view_px) / 2
    out = transform_labels(labels, CONTEXT_PX, SCALE, geo)
    order = MIRROR_ORDER if geo.flip else np.arange(5)
    yy, xx = np.mgrid[:48, :48]
    for i in range(5):
        # landmark i in context pixel-centre coordinates; put a small blob there
        cx = labels.landmarks[i] * view_px + margin - 0.5
        cy = labels.landmarks[5 + i] * view_px + margin - 0.5
        ctx = np.zeros((CONTEXT_PX, CONTEXT_PX), np.float32)
        cv2.circle(ctx, (round(cx * 16), round(cy * 16)), 16, 1.0, -1, lineType=cv2.LINE_AA, shift=4)
        w = warp_view(np.repeat(ctx[..., None], 3, axis=2), SCALE, geo)[..., 0]
        got = np.array([(w * xx).sum() / w.sum() + 0.5, (w * yy).sum() / w.sum() + 0.5]) / 48
        j = int(np.where(order == i)[0][0])
        np.testing.assert_allclose(got, [out.landmarks[j], out.landmarks[5 + j]], atol=0.02)


def test_plain_view_is_the_centre_of_the_context_crop():
    rng = np.random.default_rng(0)
    ctx = rng.integers(0, 256, (CONTEXT_PX, CONTEXT_PX, 3), dtype=np.uint8)
    m = (CONTEXT_PX - 48) // 2
    np.testing.assert_array_equal(warp_view(ctx, SCALE, Geometry()), ctx[m:m + 48, m:m + 48])


# --- teachers -------------------------------------------------------------------------------------

def test_fsanet_crop_follows_the_training_recipe():
    image = np.zeros((200, 300, 3), np.uint8)
    crop = fsanet_crop(image, np.array([100.0, 50.0, 150.0, 110.0]), 0.6)
    # xa = int(100 - 30) = 70, xb = int(150 + 30) = 180, ya = int(50 - 36) = 14, yb = int(110 + 36) = 146
    assert crop.shape == (146 - 14, 180 - 70, 3)
    clamped = fsanet_crop(image, np.array([5.0, 5.0, 295.0, 195.0]), 0.6)
    assert clamped.shape == (199, 299, 3)      # clamped to W-1, H-1 as the recipe does
    with pytest.raises(ValueError, match="empty"):
        fsanet_crop(image, np.array([10.0, 10.0, 10.0, 20.0]), 0.6)


def test_fsanet_input_keeps_bgr_and_scales_pixels():
    crop = np.zeros((32, 16, 3), np.uint8)
    crop[..., 0] = 255          # blue
    x = fsanet_input(crop)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], 127.5 / 128)     # channel 0 stays blue: no BGR->RGB swap
    np.testing.assert_allclose(x[0, 1:], -127.5 / 128)
    with pytest.raises(ValueError, match="BGR"):
        fsanet_input(np.zeros((8, 8), np.uint8))


def test_fusion_averages_on_so3_and_reports_disagreement():
    same = fuse(np.array([[20.0, -5.0, 3.0], [20.0, -5.0, 3.0]]))
    np.testing.assert_allclose((same.yaw, same.pitch, same.roll), (20.0, -5.0, 3.0), atol=1e-9)
    assert same.disagreement_deg == pytest.approx(0.0, abs=1e-5)
    apart = fuse(np.array([[10.0, 0.0, 0.0], [30.0, 0.0, 0.0]]))
    assert apart.yaw == pytest.approx(20.0, abs=1e-9)
    assert apart.disagreement_deg == pytest.approx(20.0, abs=1e-6)


def _teachers_or_skip():
    pytest.importorskip("onnxruntime")
    if not TEACHERS.is_dir():
        pytest.skip("../shared/teachers is not present")
    from monitor.training.teachers import TeacherEnsemble

    return TeacherEnsemble(TEACHERS, TrainingSettings().teacher_margin)


@needs_shared
def test_teachers_agree_with_the_label_transforms_on_real_faces():
    """Mirroring or turning a real photo moves the teachers' pose the way the augmentation labels say."""
    ensemble = _teachers_or_skip()
    folder = DATA / "aflw2000_sample"
    with (folder / "boxes.csv").open() as f:
        boxes = {r["image"]: np.array([float(r[k]) for k in ("x1", "y1", "x2", "y2")]) for r in csv.DictReader(f)}
    for name in ("image00050.jpg", "image03614.jpg", "image00081.jpg"):
        image = cv2.imread(str(folder / name))
        box = boxes[name]
        base = ensemble.pose(image, box).rotation
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        for theta in (15.0, -15.0):
            # OpenCV's positive angle is counter-clockwise, so -theta turns the image clockwise by theta
            turned = cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, -theta, 1.0), image.shape[1::-1])
            got = ensemble.pose(turned, box).rotation
            assert geodesic_deg(got, roll_matrix(theta) @ base) < 8.0
            assert geodesic_deg(got, roll_matrix(-theta) @ base) > 20.0
        w = image.shape[1]
        mirrored = ensemble.pose(image[:, ::-1].copy(), np.array([w - box[2], box[1], w - box[0], box[3]])).rotation
        assert geodesic_deg(mirrored, FLIP @ base @ FLIP) < 6.0


# --- losses ---------------------------------------------------------------------------------------

def test_ohem_keeps_the_hardest_or_the_middle():
    losses = torch.arange(10, dtype=torch.float32)
    assert float(ohem(losses, "hardest", 0.7)) == pytest.approx(np.mean(range(3, 10)))
    assert float(ohem(losses, "middle", 0.6)) == pytest.approx(np.mean(range(2, 8)))
    assert float(ohem(losses, "none", 0.6)) == pytest.approx(4.5)
    with pytest.raises(ValueError, match="allowed"):
        ohem(losses, "easiest", 0.5)


def test_rotation_losses_measure_the_rotation():
    target = torch.from_numpy(np.stack([euler_to_matrix(10, 20, 30), euler_to_matrix(-40, 5, 0)])).float()
    exact = torch.cat([target[:, :, 0], target[:, :, 1]], dim=1) * 3.0     # scale is ignored
    assert rotation_loss(exact, target, "l2").abs().max() < 1e-6
    off = torch.from_numpy(np.stack([roll_matrix(10.0) @ t.numpy() for t in target])).float()
    sixd = torch.cat([off[:, :, 0], off[:, :, 1]], dim=1)
    np.testing.assert_allclose(rotation_loss(sixd, target, "geodesic").numpy(), np.radians([10, 10]), atol=1e-3)
    assert (rotation_loss(sixd, target, "l2") > 0).all()


# --- a tiny end-to-end training run -----------------------------------------------------------------

def _synthetic_samples(n: int = 48) -> Samples:
    """Bright discs with a dark 'nose' whose offset encodes yaw, plus noise negatives."""
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 60, (n, CONTEXT_PX, CONTEXT_PX, 3), dtype=np.uint8)
    kind = np.array([POSITIVE, NEGATIVE, PART] * (n // 3), np.int8)
    yaw = rng.uniform(-40, 40, n)
    for i in np.where(kind != NEGATIVE)[0]:
        cv2.circle(crops[i], (36, 36), 20, (200, 190, 180), -1)
        cv2.circle(crops[i], (int(36 - yaw[i] / 3), 40), 4, (30, 30, 30), -1)
    rot = np.stack([euler_to_matrix(y, 0, 0) for y in yaw]).astype(np.float32)
    return Samples(crops, kind, np.zeros((n, 4), np.float32), np.tile(np.linspace(0.3, 0.7, 10), (n, 1)),
                   rot, np.stack([yaw, 0 * yaw, 0 * yaw], 1).astype(np.float32), kind == POSITIVE,
                   np.arange(n) % 4 == 0, np.zeros(n, bool))


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    from monitor.fpnet import from_onet

    settings = TrainingSettings(ohem="none")
    samples = _synthetic_samples()
    x, target = make_batch(samples, np.arange(len(samples)), np.random.default_rng(0), settings, augment=False)
    net = from_onet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        f = net.features(x)
        return multitask_loss(net.dense6_1(f), net.dense6_2(f), net.dense6_3(f), net.dense6_4(f), target, settings)[0]

    before = float(loss().detach())
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.7 * before


def test_training_run_checkpoints_and_resumes_exactly(tmp_path):
    from monitor.training.train import train_run

    samples = _synthetic_samples()
    settings = TrainingSettings(epochs=2, batch_size=8, learning_rate=1e-3)
    full = train_run(tmp_path / "a", "r", settings, batches_per_epoch=2, samples=samples)
    half = train_run(tmp_path / "b", "r", TrainingSettings(epochs=1, batch_size=8, learning_rate=1e-3),
                     batches_per_epoch=2, samples=samples)
    with pytest.raises(FileExistsError, match="--resume"):
        train_run(tmp_path / "b", "r", settings, batches_per_epoch=2, samples=samples)
    resumed = train_run(tmp_path / "b", "r", settings, resume=True, batches_per_epoch=2, samples=samples)
    a = torch.load(tmp_path / "a" / "runs" / "r" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "runs" / "r" / "last.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    log = (tmp_path / "b" / "runs" / "r" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log] == ["epoch", "1", "2"]
    assert half["best"]["epoch"] == 1 and resumed["best"] == full["best"]
    assert (tmp_path / "b" / "runs" / "r" / "best.pt").is_file()


def test_large_yaw_faces_are_over_sampled():
    samples = _synthetic_samples(300)
    samples.angles[:, 0] = np.where(np.arange(300) < 30, 50.0, 5.0)
    w = sampling_weights(samples, TrainingSettings(max_band_weight=8.0))
    pose = samples.pose_ok
    big, small = pose & (samples.angles[:, 0] > 40), pose & (samples.angles[:, 0] < 40)
    assert w[big].mean() > 3 * w[small].mean()
    assert w[pose].sum() == pytest.approx(pose.sum() / len(w), rel=1e-6)    # the share of positives is kept


def test_synthesized_views_are_drawn_synth_weight_times_as_often():
    samples = _synthetic_samples(300)
    samples.synthetic[:] = np.arange(300) % 2 == 0
    plain = sampling_weights(samples, TrainingSettings())
    tripled = sampling_weights(samples, TrainingSettings(synth_weight=3.0))
    synth, real = samples.pose_ok & samples.synthetic, ~samples.synthetic
    np.testing.assert_allclose(tripled[synth] / tripled[real].mean(), 3 * plain[synth] / plain[real].mean())
    assert tripled.sum() == pytest.approx(1.0)


def test_per_source_balance_draws_the_few_real_turned_faces_more_often():
    # 100 synthesized turned heads crowd the 45-60 band; 5 real turned faces sit in it beside 95 frontal.
    samples = _synthetic_samples(300)
    samples.pose_ok[:] = np.arange(300) < 200
    samples.synthetic[:] = np.arange(300) < 100
    samples.angles[:, 1] = 0.0
    samples.angles[:, 0] = np.where((np.arange(300) < 105), 50.0, 5.0)
    real_turned = ~samples.synthetic & (samples.angles[:, 0] > 40) & samples.pose_ok
    real_frontal = ~samples.synthetic & (samples.angles[:, 0] < 40) & samples.pose_ok
    joint = sampling_weights(samples, TrainingSettings(max_band_weight=50.0))
    per_source = sampling_weights(samples, TrainingSettings(max_band_weight=50.0, band_balance="per_source"))
    assert joint[real_turned].mean() < 1.1 * joint[real_frontal].mean()    # jointly the band looks common
    np.testing.assert_allclose(per_source[real_turned].sum(), per_source[real_frontal].sum())
    # each source keeps its share: 100 synthesized, 100 real faces, 100 crops without a pose
    np.testing.assert_allclose(per_source[samples.synthetic].sum(), per_source[~samples.pose_ok].sum())
    np.testing.assert_allclose(per_source[real_turned | real_frontal].sum(), per_source[~samples.pose_ok].sum())
    assert per_source.sum() == pytest.approx(1.0)


def test_soup_keeps_the_runs_that_lower_the_validation_error(tmp_path, monkeypatch):
    from monitor.training import soup as soup_module
    from monitor.training.soup import SoupError, average_states, soup_run

    base = _tiny_state()
    states = {run: {k: v + shift for k, v in base.items()} for run, shift in (("a", 0.0), ("b", 1.0), ("c", 3.0))}
    for run, state in states.items():
        (tmp_path / "runs" / run).mkdir(parents=True)
        torch.save(state, tmp_path / "runs" / run / "best.pt")

    def fake_validate(net, views, val):   # error = distance of conv1's mean weight from 0.4
        return {"val_mean": abs(float(net.conv1.weight.detach().mean() - base["conv1.weight"].mean()) - 0.4)}
    monkeypatch.setattr(soup_module, "validate", fake_validate)
    report = soup_run(tmp_path, "soup", ["c", "a", "b"], TrainingSettings(), export=tmp_path / "w.pt",
                      samples=_synthetic_samples())
    # alone: a 0.4, b 0.6, c 2.6; a+b (mean shift 0.5) 0.1 is kept; a+b+c (shift 1.33) 0.93 is not
    assert report["kept"] == ["a", "b"] and report["soup"]["val_mean"] == pytest.approx(0.1, abs=1e-6)
    saved = torch.load(tmp_path / "runs" / "soup" / "best.pt", weights_only=True)
    for k in base:
        torch.testing.assert_close(saved[k], (states["a"][k] + states["b"][k]) / 2)
    torch.testing.assert_close(torch.load(tmp_path / "w.pt", weights_only=True)["conv1.weight"], saved["conv1.weight"])
    assert json.loads((tmp_path / "runs" / "soup" / "soup.json").read_text())["kept"] == ["a", "b"]
    with pytest.raises(FileExistsError, match="another --run"):
        soup_run(tmp_path, "soup", ["a", "b"], TrainingSettings())
    with pytest.raises(FileNotFoundError, match="'d'"):
        soup_run(tmp_path, "x", ["a", "d"], TrainingSettings())
    with pytest.raises(SoupError, match="at least two"):
        soup_run(tmp_path, "x", ["a"], TrainingSettings())
    with pytest.raises(SoupError, match="same network"):
        average_states([states["a"], {k: v for k, v in states["b"].items() if k != "dense6_4.bias"}])


def _tiny_state() -> dict[str, torch.Tensor]:
    from monitor.fpnet import FPNet

    torch.manual_seed(0)
    return {k: v.clone() for k, v in FPNet().state_dict().items()}


# --- eval-pose helpers --------------------------------------------------------------------------------

def test_yaw_direction_uses_mtfl_left_as_positive_yaw_and_skips_frontal():
    from monitor.training.evaluate import yaw_direction

    got = yaw_direction([30.0, 10.0, -20.0, -5.0, 40.0, 3.0], [1, 2, 4, 5, 5, 3])
    assert got == {"faces": 5, "accuracy": 0.8}     # the 40 deg face labelled right profile is wrong
    assert yaw_direction([1.0], [3]) == {"faces": 0, "accuracy": None}


def test_eval_labels_are_read_or_rejected_clearly(tmp_path):
    from monitor.training.evaluate import EvalError, mae, read_labels

    with pytest.raises(EvalError, match="not a folder"):
        read_labels(tmp_path / "missing")
    with pytest.raises(EvalError, match="no labels.csv and no images"):
        read_labels(tmp_path)
    (tmp_path / "b.jpg").write_bytes(b"")
    assert read_labels(tmp_path) == [{"image": "b.jpg"}]
    (tmp_path / "labels.csv").write_text("image,yaw_deg,pitch_deg,roll_deg,pose_class\nb.jpg,10,-5,2,2\n")
    row = read_labels(tmp_path)[0]
    np.testing.assert_allclose(row["label"], [10, -5, 2])
    assert row["pose_class"] == 2
    (tmp_path / "labels.csv").write_text("image,yaw_deg,pitch_deg,roll_deg\nb.jpg,ten,-5,2\n")
    with pytest.raises(EvalError, match="b.jpg"):
        read_labels(tmp_path)
    assert mae(np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 0.0, 0.0]])) == \
        {"yaw": 1.0, "pitch": 2.0, "roll": 3.0, "mean": 2.0}
