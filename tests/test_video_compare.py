"""`eval-pose --session`: a session's FPNet angles against the teachers on the same frames.

A generated source video whose frame k is a flat grey of level LEVEL0 + k * LEVEL_STEP lets a stub
teacher read back which frame it was handed, so a frame misaligned by one gives wrong angles. The
session is written by the real recorder, with frames dropped as in real time, so the session's
own video.avi (one frame per row) and the source (matched on `frame`) hold different frame
numbers for the same row.
"""

import importlib.util
import json

import cv2
import numpy as np
import pytest

from monitor import cli
from monitor.config import Config
from monitor.recorder import POSES_FILE, SUMMARY_FILE, VIDEO_FILE, PoseRow, SessionRecorder
from monitor.training.evaluate import EvalError
from monitor.training.video_compare import compare_session
from tests.shared import TEACHERS

SIZE = (64, 48)                  # width, height
FPS = 10.0
SOURCE_FRAMES = 10
LEVEL0, LEVEL_STEP = 10, 20      # grey levels far enough apart to survive JPEG
PROCESSED = (0, 2, 3, 5, 6, 9)   # the frames a real-time run got to; the rest were dropped
NO_FACE = 3
BOX = np.array([8.0, 6.0, 56.0, 42.0])
FPNET_OFFSET = np.array([2.0, -1.0, 0.5])   # FPNet = teacher + this, so the expected MAE is exact


def teacher_angles(k: int) -> np.ndarray:
    """Frame k's pose as the stub teacher reports it: yaw -20, 0, 30, 40, 70 on the face frames."""
    return np.array([10.0 * k - 20.0, float(k), -float(k)])


def stub_teacher(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    np.testing.assert_allclose(box, BOX)
    return teacher_angles(int(round((image.mean() - LEVEL0) / LEVEL_STEP)))


def grey(k: int) -> np.ndarray:
    return np.full((SIZE[1], SIZE[0], 3), LEVEL0 + LEVEL_STEP * k, np.uint8)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.avi"
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for k in range(SOURCE_FRAMES):
        writer.write(grey(k))
    writer.release()
    return path


@pytest.fixture
def session(tmp_path):
    folder = tmp_path / "session"
    with SessionRecorder(folder, Config(), FPS, SIZE) as rec:
        for k in PROCESSED:
            rec.write_frame(grey(k))
            if k == NO_FACE:
                rec.write_pose(PoseRow(t=k / FPS, frame=k, face=False))
            else:
                yaw, pitch, roll = teacher_angles(k) + FPNET_OFFSET
                rec.write_pose(PoseRow(k / FPS, k, True, 0.99, *BOX, yaw, pitch, roll, yaw, pitch, roll, "attentive"))
    return folder


@pytest.mark.parametrize("use_source", [True, False], ids=["source video", "recorded video"])
def test_angles_are_compared_on_the_very_frames(session, source, use_source, tmp_path):
    per_frame = tmp_path / "frames.csv"
    got = compare_session(session, lambda: stub_teacher, video=source if use_source else None,
                          per_frame=per_frame)
    assert got["frames"] == len(PROCESSED) and got["with_face"] == len(PROCESSED) - 1
    assert got["video_kind"] == ("source" if use_source else "recorded")
    assert got["mean_abs_diff"] == {"yaw": 2.0, "pitch": 1.0, "roll": 0.5, "mean": 1.167}
    assert {k: v["frames"] for k, v in got["by_teacher_yaw_band"].items()} == {"0-30": 2, "30-60": 2, "60-90": 1}
    assert got["teacher_yaw_30_plus"]["frames"] == 3
    assert got["yaw_range"] == {"fpnet": [-18.0, 72.0], "teachers": [-20.0, 70.0]}
    fit = got["yaw_fit_vs_teachers"]
    assert fit["faces"] == 5 and fit["monotonic"] is True
    rows = np.genfromtxt(per_frame, delimiter=",", names=True)
    assert rows["frame"].tolist() == [0, 2, 5, 6, 9]
    np.testing.assert_allclose(rows["yaw"] - rows["teacher_yaw"], FPNET_OFFSET[0])


def test_a_video_that_is_not_the_source_is_refused(session, tmp_path):
    short = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(short), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for k in range(4):
        writer.write(grey(k))
    writer.release()
    with pytest.raises(EvalError, match="has 4 frames but the session needs frame 9"):
        compare_session(session, lambda: stub_teacher, video=short)
    big = tmp_path / "big.avi"
    writer = cv2.VideoWriter(str(big), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (128, 96))
    for k in range(SOURCE_FRAMES):
        writer.write(np.zeros((96, 128, 3), np.uint8))
    writer.release()
    with pytest.raises(EvalError, match="is 128x96 but the session was recorded at 64x48"):
        compare_session(session, lambda: stub_teacher, video=big)


def test_unusable_sessions_say_why_before_loading_the_teachers(session, tmp_path):
    def no_teacher():
        raise AssertionError("the teachers must not load for an unusable session")

    with pytest.raises(EvalError, match="has no poses.csv"):
        compare_session(tmp_path / "nowhere", no_teacher)
    (session / VIDEO_FILE).unlink()
    with pytest.raises(EvalError, match="pass the session's source with --video"):
        compare_session(session, no_teacher)
    lines = (session / POSES_FILE).read_text().splitlines()
    faceless = [line for line in lines[1:] if line.split(",")[2] == "0"]
    (session / POSES_FILE).write_text("\n".join([lines[0], *faceless]) + "\n")
    with pytest.raises(EvalError, match="no frame with a face"):
        compare_session(session, no_teacher)


def test_a_row_cut_short_by_a_crash_is_skipped(session, source):
    (session / SUMMARY_FILE).unlink()                   # a crashed session has no summary either
    with (session / POSES_FILE).open("a") as fh:
        fh.write("1.0,10,1,0.9,8.0,6.0,56")
    got = compare_session(session, lambda: stub_teacher, video=source)
    assert got["frames"] == len(PROCESSED) + 1 and got["with_face"] == len(PROCESSED) - 1


def test_command_line_errors_exit_with_usage_or_input_codes(session, tmp_path, capsys):
    assert cli.main(["eval-pose", "--session", str(session)]) == 2                       # no --teachers
    assert cli.main(["eval-pose", "--data", str(tmp_path), "--video", "x.avi"]) == 2    # --session only
    assert cli.main(["eval-pose", "--session", str(tmp_path / "nowhere"), "--teachers", str(tmp_path)]) == 3
    code = cli.main(["eval-pose", "--session", str(session), "--teachers", str(tmp_path)])
    err = capsys.readouterr().err
    if importlib.util.find_spec("onnxruntime") is None:
        assert code == 2 and "setup.sh --train" in err   # the missing training extra: a setup problem
    else:
        assert code == 3 and "fsanet" in err              # the missing teacher models: unreadable input


def test_command_line_runs_the_real_teachers(session, source, capsys):
    pytest.importorskip("onnxruntime")
    if not TEACHERS.is_dir():
        pytest.skip("../shared/teachers is not present")
    assert cli.main(["eval-pose", "--session", str(session), "--video", str(source),
                     "--teachers", str(TEACHERS)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["with_face"] == len(PROCESSED) - 1 and got["video_kind"] == "source"
    assert all(np.isfinite(v) for v in got["mean_abs_diff"].values())
