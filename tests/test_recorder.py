"""The session recorder: the folder's files, refusing to overwrite, a full disk, and a SIGKILL mid-run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.capture import CaptureThread, open_source
from monitor.config import Config
from monitor.recorder import POSE_COLUMNS, PoseRow, RecorderError, SessionRecorder

REPO = Path(__file__).resolve().parents[1]
SIZE = (160, 120)
FPS = 25.0


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)


def face_row(i: int) -> PoseRow:
    return PoseRow(t=i / FPS, frame=i, face=True, score=0.99, x1=10.0, y1=20.0, x2=70.5, y2=90.25,
                   yaw_deg=1.0 + i / 3, pitch_deg=-2.5, roll_deg=0.125,
                   yaw_smooth_deg=1.0, pitch_smooth_deg=-2.0, roll_smooth_deg=0.0, state="attentive")


def test_a_session_folder_holds_video_poses_events_config_and_summary(tmp_path, face_frame, marker):
    config = Config().replace("attention", looking_away_s=2.5)
    folder = tmp_path / "session"
    with SessionRecorder(folder, config, FPS, SIZE) as rec:
        for i in range(10):
            rec.write_frame(face_frame(i, SIZE))
            rec.write_pose(face_row(i) if i != 4 else PoseRow(t=4 / FPS, frame=4, face=False, state="no_face"))
        rec.write_event({"kind": "looking_away", "phase": "start", "t": 0.2})
        rec.write_event({"kind": "looking_away", "phase": "end", "t": 0.3})
        rec.write_event({"note": "free-form objects are kept as given"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "events.jsonl", "poses.csv",
                                                        "summary.json", "video.avi"]

    with (folder / "poses.csv").open(encoding="utf-8") as fh:
        header = fh.readline().strip()
    assert header == ("t,frame,face,score,x1,y1,x2,y2,yaw_deg,pitch_deg,roll_deg,"
                      "yaw_smooth_deg,pitch_smooth_deg,roll_smooth_deg,state")
    assert tuple(header.split(",")) == POSE_COLUMNS
    rows = read_rows(folder / "poses.csv")
    assert len(rows) == 10
    assert [float(r["t"]) for r in rows] == [i / FPS for i in range(10)]          # exact, for replay
    assert float(rows[3]["yaw_deg"]) == 1.0 + 3 / 3 and rows[3]["face"] == "1"
    assert rows[4] == {**{c: "" for c in POSE_COLUMNS}, "t": "0.16", "frame": "4", "face": "0",
                       "state": "no_face"}

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events[0] == {"kind": "looking_away", "phase": "start", "t": 0.2} and len(events) == 3
    assert Config.load(folder / "config.toml") == config

    frames = read_video(folder / "video.avi")
    assert [marker(f) for f in frames] == list(range(10))
    cap = cv2.VideoCapture(str(folder / "video.avi"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS) and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 10

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frames"] == 10 and summary["pose_rows"] == 10 and summary["face_rows"] == 9
    assert summary["duration_s"] == pytest.approx(9 / FPS) and summary["fps"] == pytest.approx(FPS)
    assert summary["events"] == 3
    assert summary["events_by_kind"] == {"looking_away": {"start": 1, "end": 1}}


def test_the_callers_summary_is_added_and_wins_on_a_clash(tmp_path):
    rec = SessionRecorder(tmp_path / "s", Config(), FPS, SIZE)
    rec.write_pose(face_row(0))
    rec.close({"alerts": {"looking_away": 2}, "frames": 12})
    rec.close({"ignored": True})                        # closing twice does nothing
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["alerts"] == {"looking_away": 2} and summary["frames"] == 12 and "ignored" not in summary
    with pytest.raises(RecorderError, match="closed"):
        rec.write_pose(face_row(1))


def test_an_error_inside_the_with_block_is_noted_in_the_summary(tmp_path):
    with pytest.raises(KeyError):
        with SessionRecorder(tmp_path / "s", Config(), FPS, SIZE):
            raise KeyError("boom")
    assert "boom" in json.loads((tmp_path / "s" / "summary.json").read_text())["ended_by_error"]


@pytest.mark.parametrize("fourcc", ["MJPG", "XVID", "FMP4"])
def test_every_allowed_codec_is_read_back(tmp_path, face_frame, marker, fourcc):
    config = Config().replace("recorder", video_fourcc=fourcc)
    with SessionRecorder(tmp_path / fourcc, config, FPS, SIZE) as rec:
        for i in range(8):
            rec.write_frame(face_frame(i, SIZE))
    frames = read_video(tmp_path / fourcc / "video.avi")
    assert len(frames) == 8 and marker(frames[0]) == 0 and marker(frames[-1]) == 7


# --- refusing bad input -------------------------------------------------------------------------

def test_an_existing_session_is_never_overwritten(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "poses.csv").write_text("precious")
    with pytest.raises(RecorderError, match=r"already exists and is not empty; a session is never overwritten"):
        SessionRecorder(folder, Config(), FPS, SIZE)
    assert (folder / "poses.csv").read_text() == "precious"


def test_an_existing_empty_folder_is_used(tmp_path):
    SessionRecorder(tmp_path, Config(), FPS, SIZE).close({})
    assert (tmp_path / "summary.json").is_file()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "s").write_text("")
    with pytest.raises(RecorderError, match="it is a file, not a folder"):
        SessionRecorder(tmp_path / "s", Config(), FPS, SIZE)


@pytest.mark.parametrize("fps, size, match", [(0.0, SIZE, "fps"), (float("nan"), SIZE, "fps"),
                                              (FPS, (160,), "frame_size"), (FPS, (0, 120), "frame_size")])
def test_bad_fps_or_frame_size_is_refused(tmp_path, fps, size, match):
    with pytest.raises(ValueError, match=match):
        SessionRecorder(tmp_path / "s", Config(), fps, size)


def test_a_frame_that_is_not_a_bgr_image_is_refused(tmp_path):
    with SessionRecorder(tmp_path / "s", Config(), FPS, SIZE) as rec:
        with pytest.raises(ValueError, match=r"float32 .* takes BGR uint8 images of shape \(120, 160, 3\)"):
            rec.write_frame(np.zeros((120, 160, 3), np.float32))
        with pytest.raises(ValueError, match=r"\(120, 160\) but"):
            rec.write_frame(np.zeros((120, 160), np.uint8))
        rec.write_frame(np.zeros((120, 160, 3), np.uint8))
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["frames"] == 1


def test_a_frame_of_another_size_ends_the_recording_cleanly(tmp_path, face_frame):
    rec = SessionRecorder(tmp_path / "s", Config(), FPS, SIZE)
    rec.write_frame(face_frame(0, SIZE))
    with pytest.raises(RecorderError, match="recording stopped at frame 1: it is 320x240 but the video is 160x120"):
        rec.write_frame(face_frame(1, (320, 240)))
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["frames"] == 1 and "320x240" in summary["stopped"]
    assert len(read_video(tmp_path / "s" / "video.avi")) == 1


def test_events_must_be_json_objects(tmp_path):
    with SessionRecorder(tmp_path / "s", Config(), FPS, SIZE) as rec:
        with pytest.raises(TypeError, match="takes a dict"):
            rec.write_event(["not", "a", "dict"])
        with pytest.raises(ValueError, match="cannot be written as JSON"):
            rec.write_event({"t": float("nan")})
        with pytest.raises(ValueError, match="cannot be written as JSON"):
            rec.write_event({"when": object()})
    assert (tmp_path / "s" / "events.jsonl").read_text() == ""


def test_nan_and_none_are_written_as_empty_fields(tmp_path):
    with SessionRecorder(tmp_path / "s", Config(), FPS, SIZE) as rec:
        rec.write_pose(PoseRow(t=0.0, frame=0, face=True, yaw_deg=float("nan"), pitch_deg=np.float32(1.5)))
        with pytest.raises(ValueError, match="finite time"):
            rec.write_pose(PoseRow(t=float("inf"), frame=1, face=False))
    row = read_rows(tmp_path / "s" / "poses.csv")[0]
    assert (row["yaw_deg"], row["pitch_deg"], row["roll_deg"]) == ("", "1.5", "")


# --- failures while recording -------------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to fill a 'disk'")
def test_a_full_disk_stops_the_recording_with_a_clear_error(tmp_path, monkeypatch):
    import builtins
    import monitor.recorder as recorder

    def open_on_full_disk(path, *args, **kwargs):      # events.jsonl lands on a disk that is full
        return builtins.open("/dev/full" if Path(path).name == "events.jsonl" else path, *args, **kwargs)

    monkeypatch.setattr(recorder, "open", open_on_full_disk, raising=False)
    rec = SessionRecorder(tmp_path / "s", Config(), FPS, SIZE)
    rec.write_pose(face_row(0))
    with pytest.raises(RecorderError, match=r"recording stopped: disk full at .*events\.jsonl"):
        rec.write_event({"kind": "looking_away", "phase": "start"})
    with pytest.raises(RecorderError, match="disk full"):             # it stays stopped ...
        rec.write_pose(face_row(1))
    rec.close({})                                                     # ... and close does nothing
    assert not (tmp_path / "s" / "summary.json").exists()
    assert len(read_rows(tmp_path / "s" / "poses.csv")) == 1          # what was written is kept


def test_rows_are_written_in_batches_of_flush_every_s_of_row_time(tmp_path):
    config = Config().replace("recorder", flush_every_s=0.2)
    rec = SessionRecorder(tmp_path / "s", config, FPS, SIZE)
    on_disk = []
    for i in range(12):                  # rows every 0.04 s: written at t = 0, 0.2, 0.4
        rec.write_pose(face_row(i))
        on_disk.append(len(read_rows(tmp_path / "s" / "poses.csv")))
    assert on_disk == [1, 1, 1, 1, 1, 6, 6, 6, 6, 6, 11, 11]
    rec.close({})
    assert len(read_rows(tmp_path / "s" / "poses.csv")) == 12


KILLED_RECORDER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from monitor.config import Config
    from monitor.recorder import PoseRow, SessionRecorder

    folder, frames = sys.argv[1], int(sys.argv[2])
    rec = SessionRecorder(folder, Config(), 25.0, (320, 240))
    rng = np.random.default_rng(0)
    for i in range(frames):
        image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)   # noise: each frame > 32 KiB
        image[:40, :40] = i * 4
        rec.write_frame(image)
        rec.write_pose(PoseRow(t=i / 25.0, frame=i, face=True, yaw_deg=float(i)))
    print("written", flush=True)
    time.sleep(60)
""")


@pytest.mark.timeout(120)
def test_a_recording_killed_with_sigkill_keeps_all_but_the_last_moments(tmp_path):
    folder, frames = tmp_path / "killed", 60
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RECORDER, str(folder), str(frames)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (folder / "summary.json").exists()

    rows = read_rows(folder / "poses.csv")
    times = [float(r["t"]) for r in rows]
    assert times == [i / 25.0 for i in range(len(rows))]             # whole rows, in order, no gap
    assert all(r["state"] == "" and r["yaw_deg"] == str(float(i)) for i, r in enumerate(rows))
    last_t = (frames - 1) / 25.0
    flush_every_s = Config().recorder.flush_every_s
    assert last_t - flush_every_s <= times[-1] <= last_t               # lost: under flush_every_s of rows

    video = read_video(folder / "video.avi")
    assert len(video) >= frames - 1                                   # the writer holds back < 1 frame
    assert [int(round(f[5:35, 5:35].mean() / 4)) for f in video] == list(range(len(video)))

    # the video has no index (frame count unknown), yet capture replays it to its end without a warning
    source = open_source(folder / "video.avi", Config().capture)
    assert source.frame_count is None
    capture = CaptureThread(source, realtime=False)
    capture.start()
    replayed = []
    while not capture.ended:
        frame = capture.get(1.0)
        if frame is not None:
            replayed.append(frame.index)
    assert replayed == list(range(len(video))) and capture.bad_frames == 0 and capture.error is None
