"""`eval-pose --session`: a recorded session's FPNet angles against the FSA-Net teachers, frame by frame.

No labelled video exists here, so the teachers FPNet was distilled from are the reference: they
run on the very frames and boxes the monitor used (the box in poses.csv), and the result says how
far the live angles are from theirs, per |teacher yaw| band, since head turns are what matter.

Frame alignment. poses.csv's `frame` is `Frame.index`, the position in the source counted by
`VideoFileSource.read` calls (unreadable frames use up an index; in real-time mode dropped frames
leave gaps), so the source video is read back through that same class and matched on `frame`. The
session's own video.avi instead holds exactly one frame per processed row (the recorder writes
both together), so it is matched on the row number. The source is preferred: video.avi is MJPG,
re-encoded, and the teachers would see compression the monitor did not.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from monitor.capture import EndOfSource, SourceError, VideoFileSource
from monitor.config import CaptureSettings, TrainingSettings
from monitor.recorder import POSES_FILE, SUMMARY_FILE, VIDEO_FILE
from monitor.training.evaluate import ANGLES, DECIMALS, EvalError, errors_by_yaw, mae, yaw_fit

# (image, box x1,y1,x2,y2) -> (yaw, pitch, roll) in degrees
Teacher = Callable[[np.ndarray, np.ndarray], np.ndarray]
NEEDED_COLUMNS = ("frame", "face", "x1", "y1", "x2", "y2", "yaw_deg", "pitch_deg", "roll_deg")
PER_FRAME_FIELDS = ("frame", "t", "yaw", "pitch", "roll", "teacher_yaw", "teacher_pitch", "teacher_roll")


@dataclass(frozen=True)
class RecordedFace:
    row: int              # 0-based data row of poses.csv, = frame of the session's video.avi
    frame: int            # source frame index
    t: float
    box: np.ndarray       # x1, y1, x2, y2
    angles: np.ndarray    # FPNet's raw yaw, pitch, roll


def read_session_faces(folder: Path) -> tuple[int, list[RecordedFace]]:
    """(rows in poses.csv, the rows with a face and a pose). A last row cut short by a crash is dropped."""
    path = Path(folder) / POSES_FILE
    if not path.is_file():
        raise EvalError(f"{folder} is not a session folder: it has no {POSES_FILE} "
                        f"(record one with `headless --record DIR`)")
    rows, faces = 0, []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in NEEDED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise EvalError(f"{path} lacks the columns {', '.join(missing)} (a session's poses.csv has them)")
        for number, row in enumerate(reader):
            rows += 1
            if (row["face"] or "").strip().lower() not in ("1", "true", "yes") or not row["yaw_deg"]:
                continue
            try:
                box = np.array([float(row[c]) for c in ("x1", "y1", "x2", "y2")])
                angles = np.array([float(row[f"{a}_deg"]) for a in ANGLES])
                face = RecordedFace(number, int(row["frame"]), float(row["t"]), box, angles)
            except (TypeError, ValueError):
                continue        # a half-written last row
            if np.isfinite(box).all() and np.isfinite(angles).all():
                faces.append(face)
    return rows, faces


def read_frames(video: Path, wanted: set[int], settings: CaptureSettings) -> Iterator[tuple[int, np.ndarray]]:
    """(position, image) for the wanted positions, counted exactly as the capture thread counts them."""
    try:
        source = VideoFileSource(Path(video), settings)
    except SourceError as exc:
        raise EvalError(str(exc)) from exc
    last = max(wanted, default=-1)
    position = -1
    try:
        while position < last:
            try:
                image = source.read()
            except EndOfSource:
                break
            position += 1
            if image is not None and position in wanted:
                yield position, image
    finally:
        source.close()


def ensemble_teacher(folder: Path) -> Teacher:
    """The fused FSA-Net pair with the crop margin used for training labels."""
    from monitor.training.teachers import TeacherEnsemble

    try:
        ensemble = TeacherEnsemble(Path(folder), margin=TrainingSettings().teacher_margin)
    except FileNotFoundError as exc:
        raise EvalError(str(exc)) from exc

    def angles(image: np.ndarray, box: np.ndarray) -> np.ndarray:
        p = ensemble.pose(image, box)
        return np.array([p.yaw, p.pitch, p.roll])

    return angles


def compare_session(folder: Path, make_teacher: Callable[[], Teacher], video: Path | None = None,
                    settings: CaptureSettings | None = None, per_frame: Path | None = None) -> dict:
    """Mean absolute difference FPNet - teachers over the session's frames with a face (see module doc).
    The teachers are loaded (`make_teacher`) only once the session and video are known to be usable,
    so a wrong path is reported as such rather than after seconds of model loading."""
    folder = Path(folder)
    rows, faces = read_session_faces(folder)
    if not faces:
        raise EvalError(f"{folder / POSES_FILE} has no frame with a face and a pose ({rows} rows): "
                        f"nothing to compare (was weights/fpnet.pt missing when it was recorded?)")
    recorded = video is None
    if recorded:
        video = folder / VIDEO_FILE
        if not video.is_file():
            raise EvalError(f"{folder} holds no {VIDEO_FILE}: pass the session's source with --video")
    settings = settings or CaptureSettings()
    by_key = {(f.row if recorded else f.frame): f for f in faces}
    _check_video(folder, video, settings, max(by_key))
    teacher = make_teacher()
    got: dict[int, np.ndarray] = {}
    for key, image in read_frames(video, set(by_key), settings):
        try:
            got[key] = teacher(image, by_key[key].box)
        except ValueError as exc:
            raise EvalError(f"frame {by_key[key].frame} of {video}: {exc} (is this the session's video?)") from exc
    missing = sorted(set(by_key) - set(got))
    if missing:
        what = "rows of poses.csv" if recorded else "source frames"
        raise EvalError(f"{video} lacks {len(missing)} of the {len(by_key)} {what} with a face "
                        f"(first missing: {missing[0]}): it is not the video this session was recorded from")
    order = sorted(by_key)
    fpnet = np.array([by_key[k].angles for k in order])
    teachers = np.array([got[k] for k in order])
    by_yaw = errors_by_yaw(teachers, {"mean_abs_diff": fpnet}, count_key="frames")
    if per_frame is not None:
        _write_per_frame(Path(per_frame), [by_key[k] for k in order], teachers)
    return {
        "frames": rows,
        "with_face": len(order),
        "video": str(video),
        "video_kind": "recorded" if recorded else "source",
        "mean_abs_diff": mae(fpnet, teachers),
        "by_teacher_yaw_band": by_yaw["bands"],
        "teacher_yaw_30_plus": by_yaw["large"],
        "yaw_range": {"fpnet": _range(fpnet[:, 0]), "teachers": _range(teachers[:, 0])},
        "yaw_fit_vs_teachers": yaw_fit(teachers[:, 0], fpnet[:, 0]),
    }


def _check_video(folder: Path, video: Path, settings: CaptureSettings, last: int) -> None:
    """Fail before running the teachers when the video cannot be the one recorded: too few frames
    (where its index says how many), or another size than summary.json records (a crashed
    session has no summary; the frame check after reading still applies)."""
    try:
        source = VideoFileSource(Path(video), settings)
    except SourceError as exc:
        raise EvalError(str(exc)) from exc
    source.close()
    if source.frame_count is not None and last >= source.frame_count:
        raise EvalError(f"{video} has {source.frame_count} frames but the session needs frame {last}: "
                        f"it is not the video this session was recorded from")
    path = folder / SUMMARY_FILE
    try:
        size = tuple(json.loads(path.read_text(encoding="utf-8")).get("frame_size") or ())
    except (OSError, ValueError):
        return
    if size and tuple(source.frame_size) != size:
        raise EvalError(f"{video} is {source.frame_size[0]}x{source.frame_size[1]} but the session was "
                        f"recorded at {size[0]}x{size[1]}: it is not this session's source")


def _range(values: np.ndarray) -> list[float]:
    return [round(float(values.min()), DECIMALS), round(float(values.max()), DECIMALS)]


def _write_per_frame(path: Path, faces: list[RecordedFace], teachers: np.ndarray) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PER_FRAME_FIELDS)
        for face, ref in zip(faces, teachers):
            writer.writerow([face.frame, round(face.t, 4), *(round(float(v), 2) for v in face.angles),
                             *(round(float(v), 2) for v in ref)])
