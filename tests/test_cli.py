"""The command line as a user meets it: exit codes, JSON shapes, record -> replay equivalence."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from tests.shared import DATA, needs_shared

ROOT = Path(__file__).resolve().parents[1]
ALERT_KEYS = {"type", "kind", "phase", "t", "onset"}
KINDS = {"looking_away", "attention_sharing", "nodding_off", "no_face"}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines() if line.strip()], out.err


def check_shapes(lines):
    *alerts, summary = lines
    for alert in alerts:
        assert set(alert) == ALERT_KEYS and alert["type"] == "alert"
        assert alert["kind"] in KINDS and alert["phase"] in ("start", "end")
        assert alert["onset"] <= alert["t"]
    assert summary["type"] == "summary"
    assert {"frames", "duration", "fps", "alerts"} <= set(summary)
    return alerts, summary


def write_empty_scene(path, frames, fps, size=(160, 120)):
    """A clip of a smoothly shaded wall: nothing a face detector could take for a face."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    ramp = np.linspace(60, 200, size[0], dtype=np.uint8)
    for i in range(frames):
        writer.write(np.dstack([np.tile(np.roll(ramp, i), (size[1], 1))] * 3))
    writer.release()
    return path


def test_headless_on_a_faceless_video_raises_no_face(capsys, tmp_path):
    video = write_empty_scene(tmp_path / "empty.avi", frames=125, fps=25.0)   # 5 s without a face
    code, lines, _ = run_cli(capsys, "headless", "--source", video, "--fast", "--no-audio")
    assert code == EXIT_OK
    alerts, summary = check_shapes(lines)
    assert [(a["kind"], a["phase"]) for a in alerts] == [("no_face", "start"), ("no_face", "end")]
    assert alerts[0]["onset"] == 0.0 and alerts[0]["t"] == pytest.approx(3.0, abs=0.05)
    assert summary["frames"] == 125 and summary["fps"] == pytest.approx(25.0, abs=0.1)
    assert summary["duration"] == pytest.approx(124 / 25, abs=1e-3)
    assert summary["alerts"] == {"no_face": 1}


def test_max_seconds_stops_early(capsys, make_video):
    video = make_video(frames=125, fps=25.0)
    code, lines, _ = run_cli(capsys, "headless", "--source", video, "--fast", "--no-audio", "--max-seconds", 1)
    assert code == EXIT_OK and lines[-1]["frames"] == 26


def test_record_then_replay_gives_the_same_alerts(capsys, make_video, tmp_path):
    video = make_video(frames=100, fps=20.0)
    session = tmp_path / "session"
    code, live, _ = run_cli(capsys, "headless", "--source", video, "--fast", "--no-audio", "--record", session)
    assert code == EXIT_OK
    for name in ("video.avi", "poses.csv", "events.jsonl", "config.toml", "summary.json"):
        assert (session / name).is_file(), name
    with (session / "poses.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 100
    code, replayed, _ = run_cli(capsys, "replay", session)
    assert code == EXIT_OK
    assert check_shapes(replayed)[0] == check_shapes(live)[0]
    # an existing session folder is never overwritten
    code, _, err = run_cli(capsys, "headless", "--source", video, "--fast", "--no-audio", "--record", session)
    assert code == EXIT_INPUT and "session" in err.lower()


def test_replay_a_hand_written_csv_with_another_config(capsys, tmp_path):
    rows = ["t,face,yaw_deg,pitch_deg,roll_deg"]
    rows += [f"{i / 10:.1f},1,{0 if i < 120 else 45},0,0" for i in range(200)]
    (tmp_path / "trace.csv").write_text("\n".join(rows) + "\n")
    code, lines, _ = run_cli(capsys, "replay", tmp_path / "trace.csv")
    alerts, summary = check_shapes(lines)
    assert code == EXIT_OK and summary["frames"] == 200
    assert [(a["kind"], a["phase"]) for a in alerts][:1] == [("looking_away", "start")]
    assert alerts[0]["onset"] == pytest.approx(12.0, abs=0.5)
    strict = tmp_path / "strict.toml"
    strict.write_text("[attention]\nyaw_away_deg = 60\n")
    code, lines, _ = run_cli(capsys, "replay", tmp_path / "trace.csv", "--config", strict)
    assert code == EXIT_OK and check_shapes(lines)[0] == []


def test_replay_errors(capsys, tmp_path):
    (tmp_path / "bad.csv").write_text("time,yaw\n1,2\n")
    code, _, err = run_cli(capsys, "replay", tmp_path / "bad.csv")
    assert code == EXIT_INPUT and "face" in err and "required" in err
    code, _, err = run_cli(capsys, "replay", tmp_path / "missing.csv")
    assert code == EXIT_INPUT and "does not exist" in err


def test_bad_source_and_bad_config_exit_codes(capsys, tmp_path):
    code, lines, err = run_cli(capsys, "headless", "--source", tmp_path / "none.avi", "--no-audio")
    assert code == EXIT_INPUT and lines == [] and "does not exist" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[attention]\nlooking_away_s = -2\n")
    code, _, err = run_cli(capsys, "headless", "--source", tmp_path / "none.avi", "--config", bad)
    assert code == EXIT_USAGE and "attention.looking_away_s" in err and "allowed" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["headless"])
    assert exit_info.value.code == EXIT_USAGE


def test_annotate_writes_images_and_results(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ramp = np.tile(np.linspace(60, 200, 160, dtype=np.uint8), (120, 1))
    for i in range(2):
        cv2.imwrite(str(src / f"f{i}.png"), np.dstack([np.roll(ramp, 7 * i)] * 3))   # no face in a shaded wall
    (src / "broken.jpg").write_bytes(b"not an image")
    code, lines, _ = run_cli(capsys, "annotate", src, tmp_path / "out")
    assert code == EXIT_OK and lines[-1]["images"] == 3 and lines[-1]["unreadable"] == 1
    with (tmp_path / "out" / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == ["f0.png", "f1.png"] and all(r["x1"] == "" for r in rows)
    assert (tmp_path / "out" / "f0.png").is_file()


@needs_shared
def test_annotate_real_faces(capsys, tmp_path):
    code, lines, _ = run_cli(capsys, "annotate", DATA / "aflw2000_sample", tmp_path / "out")
    assert code == EXIT_OK and lines[-1]["faces"] >= 16
    with (tmp_path / "out" / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["image"] for r in rows}) == 16
    for r in rows:
        x1, y1, x2, y2 = (float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= 450 and 0 <= y1 < y2 <= 450 and float(r["score"]) > 0.7
    drawn = cv2.imread(str(tmp_path / "out" / rows[0]["image"]))
    original = cv2.imread(str(DATA / "aflw2000_sample" / rows[0]["image"]))
    assert np.abs(drawn.astype(int) - original).sum() > 0


@needs_shared
def test_headless_on_the_real_clip_follows_the_face(capsys, tmp_path):
    clip = DATA / "video" / "orlando_bloom.avi"
    session = tmp_path / "s"
    code, lines, _ = run_cli(capsys, "headless", "--source", clip, "--fast", "--no-audio", "--record", session)
    alerts, summary = check_shapes(lines)
    assert code == EXIT_OK and summary["frames"] == 139
    with (session / "poses.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sum(r["face"] == "1" for r in rows) > 0.9 * len(rows)
    code, replayed, _ = run_cli(capsys, "replay", session)
    assert check_shapes(replayed)[0] == alerts


def test_sigterm_finishes_the_session(make_video, tmp_path):
    video = make_video(frames=250, fps=25.0)           # 10 s in real time
    session = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_monitor.py"), "headless", "--source", str(video),
                             "--no-audio", "--record", str(session)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (session / "poses.csv").is_file() or (session / "poses.csv").stat().st_size < 200:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_OK
    summary = json.loads(out.splitlines()[-1])
    assert summary["type"] == "summary" and 0 < summary["frames"] < 250
    assert json.loads((session / "summary.json").read_text())["frames"] == summary["frames"]
