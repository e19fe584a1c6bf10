"""Session folders written directly (no camera, no face detection), for the session-tool tests.

A session is a list of segments: (seconds, Δyaw, Δpitch, face) held at a steady frame rate,
seen by an off-axis camera. Its folder has what the recorder writes: poses.csv with the
recorder's columns, events.jsonl (what a live run of the same poses raises, i.e. `replay`),
config.toml and summary.json, and optionally a small video.avi with one frame per row.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import write_face_video
from monitor.attention import PoseSample
from monitor.config import Config
from monitor.recorder import POSE_COLUMNS
from monitor.sessions import replay

NEUTRAL = (8.0, -5.0)
VIDEO_SIZE = (64, 48)
Segment = tuple[float, float, float, bool]     # seconds, Δyaw, Δpitch, face


def samples_of(segments: list[Segment], fps: float) -> list[PoseSample]:
    samples, t = [], 0.0
    n = 0
    for seconds, dyaw, dpitch, face in segments:
        for _ in range(round(seconds * fps)):
            n += 1
            t = n / fps
            if face:
                samples.append(PoseSample(t, True, NEUTRAL[0] + dyaw, NEUTRAL[1] + dpitch, 0.0))
            else:
                samples.append(PoseSample(t, False, None, None, None))
    return samples


def pose_lines(samples: list[PoseSample]) -> list[list[str]]:
    rows = []
    for i, s in enumerate(samples):
        row = dict.fromkeys(POSE_COLUMNS, "")
        row.update(t=repr(s.t), frame=str(i), face="1" if s.face else "0")
        if s.face:
            row.update(yaw_deg=repr(s.yaw), pitch_deg=repr(s.pitch), roll_deg=repr(s.roll))
        rows.append([row[c] for c in POSE_COLUMNS])
    return rows


def write_session(folder: Path, segments: list[Segment], fps: float = 10.0, config: Config | None = None,
                  video: bool = False, labels: list[tuple[float, float, str]] | None = None) -> Path:
    config = config or Config()
    folder.mkdir(parents=True)
    samples = samples_of(segments, fps)
    with (folder / "poses.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(POSE_COLUMNS)
        writer.writerows(pose_lines(samples))
    events = replay(samples, config)
    (folder / "events.jsonl").write_text("".join(json.dumps(e.to_json()) + "\n" for e in events),
                                         encoding="utf-8")
    config.save(folder / "config.toml")
    (folder / "summary.json").write_text(json.dumps({"frames": len(samples)}), encoding="utf-8")
    if video:
        write_face_video(folder / "video.avi", len(samples), fps, VIDEO_SIZE)
    if labels is not None:
        lines = ["start,end,kind"] + [f"{a},{b},{k}" for a, b, k in labels]
        (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, to check that a tool left a session folder as it was."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
