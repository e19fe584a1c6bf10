"""Face profiling (`train profile`): the turn's geometry, its exact labels, and the step's plumbing.

The geometric tests use a generated, symmetric face-like mesh (an ellipsoid cap) over a generated
image, so they run without MediaPipe or ../shared; the re-fit through MediaPipe itself runs only
where `./setup.sh --mesh` made .venv-mesh and ../shared is present.
"""

import dataclasses
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import Config, ConfigError, TrainingSettings
from monitor.rotation import euler_to_matrix, geodesic_deg, matrix_to_euler
from monitor.training.faceturn import (NOSE_TIP, Profiler, camera_turn, fit_similarity, load_mean_shape,
                                       mesh_rotation, mirror_index)
from monitor.training.profile import (DEFAULT_MESH_PYTHON, REPO, SourceFaces, contact_sheet, run_meshes,
                                      target_turn, usable)
from tests.shared import DATA, TEACHERS, needs_shared

S = TrainingSettings()
N_POINTS = 468


def cap_shape() -> np.ndarray:
    """468 points on the front of an ellipsoid, mirror-symmetric in x, nose (index 1) at the front."""
    xs = np.linspace(-1, 1, 27)
    grid = np.array([(x, y) for y in np.linspace(-1.2, 1.2, 27) for x in xs if x * x + (y / 1.2) ** 2 < 0.97])
    grid = grid[np.argsort(np.hypot(grid[:, 0], grid[:, 1]), kind="stable")][:N_POINTS]
    z = -0.8 * np.sqrt(np.clip(1 - grid[:, 0] ** 2 - (grid[:, 1] / 1.2) ** 2, 0, None))
    pts = np.column_stack([grid, z])
    pts[[0, 1]] = pts[[1, 0]]
    return pts - pts.mean(axis=0)


def face_image(shape: np.ndarray, size: int = 240, face_px: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """A textured image and the mesh laid on it, frontal, in pixels."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), (0, 0), 2)
    points = shape * face_px + [size / 2, size / 2, 0]
    cv2.ellipse(image, (size // 2, size // 2), (int(face_px), int(1.2 * face_px)), 0, 0, 360, (90, 140, 200), -1)
    return image, points


@pytest.fixture(scope="module")
def profiler() -> Profiler:
    return Profiler(cap_shape(), S.profile_pivot_depth, S.profile_outline_scale, S.profile_window_scale)


def test_a_turn_of_zero_reproduces_the_photo(profiler):
    image, points = face_image(profiler.mean_shape)
    view = profiler.turn(image, points, np.eye(3), camera_turn(0.0, 0.0))
    x1, y1, x2, y2 = profiler.window(points, image.shape[:2])
    assert view.image.shape == image[y1:y2, x1:x2].shape
    assert np.abs(view.image.astype(int) - image[y1:y2, x1:x2]).max() <= 1
    np.testing.assert_allclose(view.points[:, :2], points[:, :2] - [x1, y1], atol=1e-4)


def test_the_label_is_the_exact_composition_and_inverts(profiler):
    image, points = face_image(profiler.mean_shape)
    r = euler_to_matrix(10.0, -5.0, 3.0)
    d = camera_turn(40.0, -20.0)
    view = profiler.turn(image, points, r, d)
    np.testing.assert_allclose(view.rotation, r @ d, atol=1e-12)
    back = profiler.turn(view.image, view.points, view.rotation, d.T)
    np.testing.assert_allclose(back.rotation, r, atol=1e-12)


@pytest.mark.parametrize("d_yaw,d_pitch", [(30.0, 0.0), (-60.0, 0.0), (0.0, -40.0), (45.0, 20.0)])
def test_the_turned_mesh_refits_to_the_label(profiler, d_yaw, d_pitch):
    """Fitting the mean shape to the turned points gives R' = R dR: the label and the geometry agree."""
    image, points = face_image(profiler.mean_shape)
    view = profiler.turn(image, points, mesh_rotation(points, profiler.mean_shape), camera_turn(d_yaw, d_pitch))
    assert geodesic_deg(mesh_rotation(view.points, profiler.mean_shape), view.rotation) < 1e-3   # float32 points
    yaw, pitch, _ = matrix_to_euler(view.rotation)
    assert yaw == pytest.approx(d_yaw, abs=1e-3) and pitch == pytest.approx(d_pitch, abs=1e-3)


def test_positive_yaw_turns_the_face_toward_the_image_left(profiler):
    """The README's convention: yaw > 0 moves the nose to the image's left."""
    image, points = face_image(profiler.mean_shape)
    x1 = profiler.window(points, image.shape[:2])[0]
    left = profiler.turn(image, points, np.eye(3), camera_turn(40.0, 0.0))
    right = profiler.turn(image, points, np.eye(3), camera_turn(-40.0, 0.0))
    assert left.points[NOSE_TIP, 0] + x1 < points[NOSE_TIP, 0] - 10 < right.points[NOSE_TIP, 0] + x1 - 20


def test_a_turn_moves_the_face_and_paints_no_holes(profiler):
    image, points = face_image(profiler.mean_shape)
    view = profiler.turn(image, points, np.eye(3), camera_turn(60.0, 0.0))
    assert view.image.shape[:2] != (0, 0) and view.image.dtype == np.uint8
    x1, y1 = profiler.window(points, image.shape[:2])[:2]
    before = image[y1:y1 + view.image.shape[0], x1:x1 + view.image.shape[1]].astype(int)
    changed = np.abs(view.image.astype(int) - before).max(axis=2) > 30
    assert changed.mean() > 0.05
    # Inside the turned face every pixel shows the face's colour, not the noise around it.
    x, y = view.points[NOSE_TIP, :2].astype(int)
    patch = view.image[y - 5:y + 5, x - 3:x + 8].reshape(-1, 3).astype(float)
    np.testing.assert_allclose(patch.mean(axis=0), (90, 140, 200), atol=25)


def test_similarity_fit_and_mirror_map():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    r = euler_to_matrix(20, 30, -10)
    s, rot, t = fit_similarity(src, 3.0 * src @ r.T + [1, 2, 3])
    assert s == pytest.approx(3.0) and np.allclose(rot, r) and np.allclose(t, [1, 2, 3])
    pairs = np.array([[-1, 0, 0], [1, 0, 0], [0, 1, 0], [-2, 1, 1], [2, 1.02, 1]], float)
    assert mirror_index(pairs).tolist() == [1, 0, 2, 4, 3]


def test_target_poses_cover_the_missing_band_on_the_side_the_face_leans_to():
    rng = np.random.default_rng(0)
    yaws, pitches = [], []
    for _ in range(400):
        y, p, _ = matrix_to_euler(np.eye(3) @ target_turn(rng, np.array([12.0, 0.0, 0.0]), S) @ euler_to_matrix(0, 0, 0))
        yaws.append(y + 0.0)
        pitches.append(p)
    # dR is relative to the face's yaw of 12: the target yaw is 12 + the turn's yaw for a level head.
    targets = np.array(yaws) + 12.0
    assert targets.min() >= S.profile_min_yaw_deg - 1e-6 and targets.max() <= S.profile_max_yaw_deg + 1e-6
    changed = np.abs(np.array(pitches)) > 1e-9
    assert 0.25 < changed.mean() < 0.55
    assert min(pitches) >= S.profile_min_pitch_deg - 1e-6 and max(pitches) <= S.profile_max_pitch_deg + 1e-6


def test_only_meshed_agreeing_not_yet_turned_faces_are_profiled():
    chunk = SourceFaces("c", np.array(["a", "b", "c", "d"]), np.zeros((4, 4)),
                        np.array([[10, 0, 0], [10, 0, 0], [60, 0, 0], [-20, 5, 0]], float),
                        np.array([2.0, 40.0, 2.0, 2.0]), np.zeros(4, bool))
    assert usable(chunk, np.array([True, True, True, False]), S).tolist() == [True, False, False, False]


def test_contact_sheet_holds_every_view(profiler):
    image, points = face_image(profiler.mean_shape)
    views = [profiler.turn(image, points, np.eye(3), camera_turn(a, 0.0)) for a in (0, 30, 60)]
    sheet = contact_sheet(views)
    assert sheet.shape[0] == 64 and sheet.shape[1] == 64 * 40
    assert sheet[:, : 3 * 64].mean() > 20 and sheet[:, 3 * 64:].max() == 0


def test_profile_ranges_are_validated():
    with pytest.raises(ConfigError, match="profile_min_yaw_deg"):
        Config.from_dict({"training": {"profile_min_yaw_deg": 70.0, "profile_max_yaw_deg": 50.0}})


def test_a_missing_mesh_environment_is_a_clear_error(tmp_path):
    from monitor.training.profile import ProfileError

    chunk = SourceFaces("face_x_000", np.array(["lfw/a.jpg"]), np.zeros((1, 4)), np.zeros((1, 3)),
                        np.zeros(1), np.zeros(1, bool))
    with pytest.raises(ProfileError, match="setup.sh --mesh"):
        run_meshes(tmp_path, tmp_path, [chunk], S, tmp_path / "no-python")


@needs_shared
@pytest.mark.skipif(not DEFAULT_MESH_PYTHON.is_file(), reason="no .venv-mesh (./setup.sh --mesh)")
def test_mediapipe_refits_a_synthesized_view_to_its_yaw(tmp_path):
    """The real chain: MediaPipe's mesh of a photo, turned by +30, meshed again, has turned by about 30.

    MediaPipe's own yaw reads about 0.85 of a true turn (teachers' README), hence the tolerance.
    """
    mean = load_mean_shape(TEACHERS)
    prof = Profiler(mean, S.profile_pivot_depth, S.profile_outline_scale, S.profile_window_scale,
                    S.profile_depth_scale)
    row = (DATA / "faces" / "lfw" / "annotations.csv").read_text().splitlines()[1].split(",")
    photo = str(DATA / "faces" / "lfw" / row[0])
    box = [float(v) for v in row[1:5]]

    def mesh(image_path: str, box: list[float]) -> np.ndarray:
        job = tmp_path / "job.json"
        job.write_text(json.dumps({"items": [{"image": image_path, "box": box}], "context": 1.6, "min_side": 256}))
        subprocess.run([str(DEFAULT_MESH_PYTHON), "-m", "monitor.training.facemesh", str(job),
                        str(tmp_path / "out.npz")], cwd=REPO, check=True, capture_output=True)
        out = np.load(tmp_path / "out.npz")
        assert out["found"][0]
        return out["points"][0]

    points = mesh(photo, box)
    r = mesh_rotation(points, mean)
    view = prof.turn(cv2.imread(photo), points, r, camera_turn(30.0, 0.0))
    cv2.imwrite(str(tmp_path / "view.png"), view.image)
    refit = mesh_rotation(mesh(str(tmp_path / "view.png"), [float(v) for v in view.box]), mean)
    turned = matrix_to_euler(refit)[0] - matrix_to_euler(r)[0]
    assert 25.0 < turned < 35.0


def test_depth_scale_deepens_the_turn():
    """A stretched depth moves the nose further for the same turn (MediaPipe's mesh is too flat)."""
    shape = cap_shape()
    image, points = face_image(shape)
    shift = {}
    for depth in (1.0, 1.3):
        prof = Profiler(shape, S.profile_pivot_depth, S.profile_outline_scale, S.profile_window_scale, depth)
        view = prof.turn(image, points, np.eye(3), camera_turn(30.0, 0.0))
        x1 = prof.window(points, image.shape[:2])[0]
        shift[depth] = points[NOSE_TIP, 0] - (view.points[NOSE_TIP, 0] + x1)
        np.testing.assert_allclose(view.rotation, camera_turn(30.0, 0.0))
    assert shift[1.3] > 1.05 * shift[1.0] > 0


def test_synthesized_chunks_load_with_exact_labels_vetted_by_the_teachers(tmp_path):
    """A view's pose is trained on unless the teachers, where reliable, disagree with its exact label."""
    from monitor.training.dataset import load_samples
    from monitor.training.mining import CONTEXT_PX, NEGATIVE, POSITIVE
    from monitor.training.store import save_npz

    (tmp_path / "mine").mkdir()
    (tmp_path / "label").mkdir()
    n = 4
    save_npz(tmp_path / "mine" / "synth_face_x_000.npz", crops=np.zeros((n + 1, CONTEXT_PX, CONTEXT_PX, 3), np.uint8),
             kind=np.array([POSITIVE] * n + [NEGATIVE], np.int8), face=np.array([0, 1, 2, 3, 3], np.int32),
             box_reg=np.zeros((n + 1, 4), np.float32), landmarks=np.zeros((n + 1, 10), np.float32),
             validation=np.zeros(n + 1, bool))
    angles = np.array([[30, 0, 0], [50, -20, 0], [78, 0, 0], [40, 0, 0]], np.float32)
    save_npz(tmp_path / "label" / "synth_face_x_000.npz", angles=angles, sixd=np.zeros((n, 6), np.float32),
             teacher_gap=np.array([3.0, 25.0, 40.0, 9.0], np.float32),
             teacher_reliable=np.array([True, True, False, True]), teacher_fused=np.zeros((n, 3), np.float32))
    samples = load_samples(tmp_path, S)
    assert samples.pose_ok.tolist() == [True, False, True, True, False]
    assert samples.synthetic.all()
    np.testing.assert_allclose(samples.angles[2], [78, 0, 0])
    np.testing.assert_allclose(samples.rotation[1], euler_to_matrix(50, -20, 0), atol=1e-6)


def test_sweep_writes_held_out_faces_at_known_yaws(tmp_path):
    from monitor.training.profile import run_sweep
    from monitor.training.store import save_npz

    shape = cap_shape()
    image, points = face_image(shape)
    (tmp_path / "data" / "faces" / "lfw").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "data" / "faces" / "lfw" / "a.png"), image)
    teachers = tmp_path / "teachers"
    teachers.mkdir()
    np.savetxt(teachers / "mediapipe_facemesh_mean_shape.csv", shape, delimiter=",", header="x,y,z", comments="")
    work = tmp_path / "work"
    for sub in ("mine", "label", "profile/mesh"):
        (work / sub).mkdir(parents=True)
    save_npz(work / "mine" / "face_lfw_000.npz", face_key=np.array(["lfw/a.png", "lfw/a.png"]),
             ref_box=np.zeros((2, 4), np.float32), face_validation=np.array([True, False]))
    save_npz(work / "label" / "face_lfw_000.npz", angles=np.zeros((2, 3), np.float32),
             disagreement=np.zeros(2, np.float32))
    save_npz(work / "profile" / "mesh" / "face_lfw_000.npz", points=np.stack([points, points]).astype(np.float32),
             found=np.array([True, True]))
    dest = run_sweep(work, tmp_path / "data", teachers, S, tmp_path / "sweep", faces=5, step_deg=25.0,
                     max_yaw_deg=75.0)
    rows = (dest / "labels.csv").read_text().splitlines()
    assert rows[0] == "image,yaw_deg,pitch_deg,roll_deg"
    yaws = sorted(float(r.split(",")[1]) for r in rows[1:])
    assert yaws == pytest.approx([-75, -50, -25, 0, 25, 50, 75], abs=1e-3)   # the training face (index 1) is not used
    assert all((dest / r.split(",")[0]).is_file() for r in rows[1:])


def test_teacher_steps_without_the_training_extra_say_how_to_install_it(monkeypatch, tmp_path, capsys):
    """No onnxruntime: one line naming the extra and exit 2, not a traceback."""
    import builtins

    from monitor.cli import main

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    (tmp_path / "faces").mkdir()
    cv2.imwrite(str(tmp_path / "faces" / "a.png"), np.zeros((60, 60, 3), np.uint8))
    (tmp_path / "faces" / "labels.csv").write_text("image,yaw_deg,pitch_deg,roll_deg\na.png,0,0,0\n")
    code = main(["eval-pose", "--data", str(tmp_path / "faces"), "--teachers", str(tmp_path)])
    assert code == 2
    assert "setup.sh --train" in capsys.readouterr().err


def test_more_views_per_face_only_add_passes():
    """Raising profile_views_per_face keeps the cached first pass (same names, so same random draws)."""
    from monitor.training.dataset import pass_name, pass_view

    assert pass_name("face_lfw_000", 0) == "synth_face_lfw_000"
    assert pass_name("face_lfw_000", 1) == "synth_face_lfw_000_v1"
    assert pass_name("face_lfw_000", 1).startswith("synth_")   # what load_samples takes as synthesized
    for chunk in ("face_lfw_000", "face_net_1_012", "face_drivface_001"):
        assert [pass_view(pass_name(chunk, v)) for v in (0, 1, 12)] == [0, 1, 12]
    with pytest.raises(ValueError, match="synthesized"):
        pass_view("face_lfw_000")


def test_fewer_views_per_face_leave_the_extra_passes_out(tmp_path):
    """A work folder that holds two passes trains on one when profile_views_per_face is 1."""
    from monitor.training.dataset import load_samples, pass_name
    from monitor.training.mining import CONTEXT_PX, POSITIVE
    from monitor.training.profile import profile_summary
    from monitor.training.store import save_npz

    (tmp_path / "mine").mkdir()
    (tmp_path / "label").mkdir()
    for view, yaw in ((0, 30.0), (1, 60.0)):
        name = pass_name("face_x_000", view)
        save_npz(tmp_path / "mine" / f"{name}.npz", crops=np.zeros((1, CONTEXT_PX, CONTEXT_PX, 3), np.uint8),
                 kind=np.array([POSITIVE], np.int8), face=np.zeros(1, np.int32), box_reg=np.zeros((1, 4), np.float32),
                 landmarks=np.zeros((1, 10), np.float32), validation=np.zeros(1, bool))
        save_npz(tmp_path / "label" / f"{name}.npz", angles=np.array([[yaw, 0, 0]], np.float32),
                 sixd=np.zeros((1, 6), np.float32), teacher_gap=np.zeros(1, np.float32),
                 teacher_reliable=np.ones(1, bool), teacher_fused=np.zeros((1, 3), np.float32))
    one, two = S, dataclasses.replace(S, profile_views_per_face=2)
    np.testing.assert_allclose(load_samples(tmp_path, one).angles[:, 0], [30.0])
    np.testing.assert_allclose(sorted(load_samples(tmp_path, two).angles[:, 0]), [30.0, 60.0])
    assert profile_summary(tmp_path, one)["views"] == 1
    assert profile_summary(tmp_path, two)["views"] == 2
