"""`train profile` and `train sweep`: large-pose faces made from the real ones (see faceturn).

profile, per mined chunk of real faces (each stage cached, so a killed run resumes):
  1. mesh: MediaPipe's face mesh of every face, run in the separate `.venv-mesh` (facemesh.py).
  2. turn: each usable face turned to a pose drawn so that |yaw| 0-80 and pitch -50..+30 end up
     roughly flat; the views go to WORK/profile/faces/synth/ with an annotations.csv like the
     real sources', and a contact sheet per chunk to WORK/profile/sheets/.
  3. mine + label: the views are mined exactly as real photos are (P-Net + R-Net proposals, IoU
     classes, O-Net's box and landmark targets) into WORK/mine/synth_*.npz; their pose label is
     the exact R' = R dR, and the teachers, run on each view, keep it only where they agree
     with R' (where they are reliable), which also throws out the views that warped badly.
sweep: held-out (validation) faces turned to true yaws 0..max in even steps, written as a labelled
folder for `eval-pose`, whose `yaw_fit` then says whether yaw rises with slope ~1.
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.config import TrainingSettings
from monitor.progress import progress
from monitor.rotation import euler_to_matrix, geodesic_deg, matrix_to_euler, matrix_to_sixd
from monitor.training.dataset import in_training_set, kept_views, pass_name
from monitor.training.datasets import FaceRecord
from monitor.training.faceturn import Profiler, View, camera_turn, load_mean_shape
from monitor.training.mining import Miner
from monitor.training.pipeline import mine_face_chunk, read_image
from monitor.training.store import load_npz, save_npz

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
DEFAULT_MESH_PYTHON = REPO / ".venv-mesh" / "bin" / "python"
SYNTH_SOURCE = "synth"
JPEG_QUALITY = 95
SHEET_TILE_PX = 64
SHEET_COLUMNS = 40
SHEET_FONT_SCALE = 0.3


class ProfileError(RuntimeError):
    """A profiling stage cannot run (no mesh environment, no mined faces, ...)."""


@dataclass
class SourceFaces:
    """The real faces of one mined chunk, with their teacher labels."""
    name: str
    keys: np.ndarray          # (N,) "source/image"
    boxes: np.ndarray         # (N, 4) reference (O-Net framed) boxes
    angles: np.ndarray        # (N, 3) fused teacher yaw, pitch, roll
    disagreement: np.ndarray  # (N,)
    validation: np.ndarray    # (N,)


def source_chunks(work: Path) -> list[SourceFaces]:
    chunks = []
    for path in sorted((work / "mine").glob("face_*.npz")):
        label_path = work / "label" / path.name
        if not label_path.exists():
            raise ProfileError(f"{label_path} is missing: run `train label` first")
        mine, label = load_npz(path), load_npz(label_path)
        chunks.append(SourceFaces(path.stem, mine["face_key"], mine["ref_box"], label["angles"],
                                  label["disagreement"], mine["face_validation"]))
    if not chunks:
        raise ProfileError(f"no mined face chunks in {work / 'mine'}: run `train mine` and `train label` first")
    return chunks


def run_meshes(work: Path, data: Path, chunks: list[SourceFaces], settings: TrainingSettings,
               mesh_python: Path) -> None:
    """MediaPipe meshes of every face, one subprocess per chunk in the mesh environment."""
    folder = work / "profile" / "mesh"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [c for c in chunks if not (folder / f"{c.name}.npz").exists()]
    log.info("profile mesh: %d of %d chunks cached", len(chunks) - len(todo), len(chunks))
    if todo and not Path(mesh_python).is_file():
        raise ProfileError(f"mesh environment {mesh_python} not found: run `./setup.sh --mesh` (it makes "
                           ".venv-mesh with mediapipe==0.10.21) or pass --mesh-python")
    for chunk in progress(todo, "profile mesh", "chunk"):
        job = {"items": [{"image": str(Path(data) / "faces" / str(k)), "box": [float(v) for v in b]}
                         for k, b in zip(chunk.keys, chunk.boxes)],
               "context": settings.profile_mesh_context, "min_side": settings.profile_mesh_min_side}
        job_path = folder / f"{chunk.name}.job.json"
        job_path.write_text(json.dumps(job))
        done = subprocess.run([str(mesh_python), "-m", "monitor.training.facemesh", str(job_path),
                               str(folder / f"{chunk.name}.npz")], cwd=REPO, capture_output=True, text=True)
        job_path.unlink()
        if done.returncode != 0:
            raise ProfileError(f"face mesh failed on chunk {chunk.name}:\n{done.stderr[-2000:]}")


def target_turn(rng: np.random.Generator, angles: np.ndarray, settings: TrainingSettings) -> np.ndarray:
    """dR that takes a face with (yaw, pitch, roll) toward a pose drawn for a flat distribution.

    |yaw| is drawn uniformly over the band the real photos lack, on the side the face already
    leans to (the smaller turn warps less; flipping in training gives the other side); pitch is
    changed on a share of the faces, uniformly over the range a driver's head covers.
    """
    yaw, pitch = float(angles[0]), float(angles[1])
    side = np.sign(yaw) if abs(yaw) > 0 else rng.choice([-1.0, 1.0])
    d_yaw = side * rng.uniform(settings.profile_min_yaw_deg, settings.profile_max_yaw_deg) - yaw
    d_pitch = 0.0
    if rng.random() < settings.profile_pitch_prob:
        d_pitch = rng.uniform(settings.profile_min_pitch_deg, settings.profile_max_pitch_deg) - pitch
    return camera_turn(d_yaw, d_pitch)


def usable(chunk: SourceFaces, found: np.ndarray, settings: TrainingSettings) -> np.ndarray:
    """Faces worth turning: meshed, teachers agreeing, and not already turned far (warps degrade)."""
    return (found & (chunk.disagreement <= settings.max_disagreement_deg)
            & (np.abs(chunk.angles[:, 0]) <= settings.profile_max_source_yaw_deg))


def contact_sheet(views: list[View]) -> np.ndarray:
    """Every view's face at a glance, with its new yaw and pitch, for a person to check."""
    tiles = []
    for view in views:
        x1, y1, x2, y2 = view.box
        side = 1.3 * max(x2 - x1, y2 - y1)
        k = SHEET_TILE_PX / side
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        m = np.float32([[k, 0, SHEET_TILE_PX / 2 - k * cx], [0, k, SHEET_TILE_PX / 2 - k * cy]])
        tile = cv2.warpAffine(view.image, m, (SHEET_TILE_PX, SHEET_TILE_PX), borderMode=cv2.BORDER_CONSTANT)
        yaw, pitch, _ = matrix_to_euler(view.rotation)
        cv2.putText(tile, f"{yaw:.0f} {pitch:.0f}", (2, SHEET_TILE_PX - 3), cv2.FONT_HERSHEY_SIMPLEX,
                    SHEET_FONT_SCALE, (0, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    blank = np.zeros_like(tiles[0]) if tiles else np.zeros((SHEET_TILE_PX, SHEET_TILE_PX, 3), np.uint8)
    tiles += [blank] * (-len(tiles) % SHEET_COLUMNS)
    rows = [np.hstack(tiles[i:i + SHEET_COLUMNS]) for i in range(0, len(tiles), SHEET_COLUMNS)]
    return np.vstack(rows)


def _profiler(teachers: Path, settings: TrainingSettings) -> Profiler:
    return Profiler(load_mean_shape(teachers), settings.profile_pivot_depth, settings.profile_outline_scale,
                    settings.profile_window_scale, settings.profile_depth_scale)


def turn_chunk(profiler: Profiler, data: Path, chunk: SourceFaces, mesh: dict[str, np.ndarray],
               settings: TrainingSettings, out_folder: Path, view: int) -> tuple[list[FaceRecord], list[View], list[int]]:
    """The chunk's usable faces, turned once (pass `view`) and written as JPEGs; (records, views, source face)."""
    rng = np.random.default_rng([settings.seed, *chunk.name.encode()] + ([view] if view else []))
    records, views, origin = [], [], []
    for i in np.flatnonzero(usable(chunk, mesh["found"], settings)):
        image = read_image(Path(data) / "faces" / str(chunk.keys[i]))
        turned = profiler.turn(image, mesh["points"][i], euler_to_matrix(*chunk.angles[i]),
                               target_turn(rng, chunk.angles[i], settings))
        name = f"{chunk.name}_{i:04d}_{view}.jpg"
        if not cv2.imwrite(str(out_folder / name), turned.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise ProfileError(f"cannot write {out_folder / name} (disk full?)")
        records.append(FaceRecord(SYNTH_SOURCE, name, turned.box, turned.landmarks, 0, bool(chunk.validation[i])))
        views.append(turned)
        origin.append(int(i))
    return records, views, origin


def label_views(ensemble, data_root: Path, records: list[FaceRecord], views: list[View], ref_boxes: np.ndarray,
                settings: TrainingSettings) -> dict[str, np.ndarray]:
    """The exact labels, and how far the teachers (on the view, as mined) are from them."""
    from monitor.training.teachers import fuse

    angles, sixd, gap, reliable, teacher = [], [], [], [], []
    for rec, view, box in zip(records, views, ref_boxes):
        # The JPEG as written: the pixels mining saw, not the view before compression.
        image = read_image(data_root / "faces" / SYNTH_SOURCE / rec.image)
        pose = fuse(ensemble.angles(image, box))
        exact = matrix_to_euler(view.rotation)
        angles.append(exact)
        sixd.append(matrix_to_sixd(view.rotation))
        gap.append(geodesic_deg(pose.rotation, view.rotation))
        reliable.append(abs(exact[0]) <= settings.profile_teacher_reliable_yaw_deg)
        teacher.append([pose.yaw, pose.pitch, pose.roll])
    n = len(records)
    return {"angles": np.array(angles, np.float32).reshape(n, 3), "sixd": np.array(sixd, np.float32).reshape(n, 6),
            "teacher_gap": np.array(gap, np.float32), "teacher_reliable": np.array(reliable, bool),
            "teacher_fused": np.array(teacher, np.float32).reshape(n, 3)}


def run_profile(work: Path, data: Path, teachers: Path, settings: TrainingSettings,
                mesh_python: Path = DEFAULT_MESH_PYTHON) -> dict:
    from monitor.training.teachers import TeacherEnsemble

    chunks = source_chunks(work)
    run_meshes(work, data, chunks, settings, mesh_python)
    root = work / "profile"
    faces, sheets = root / "faces" / SYNTH_SOURCE, root / "sheets"
    faces.mkdir(parents=True, exist_ok=True)
    sheets.mkdir(parents=True, exist_ok=True)
    passes = [(c, v) for c in chunks for v in range(settings.profile_views_per_face)]
    todo = [(c, v) for c, v in passes if not (work / "label" / f"{pass_name(c.name, v)}.npz").exists()]
    log.info("profile turn: %d of %d chunk passes cached", len(passes) - len(todo), len(passes))
    if todo:
        profiler, miner = _profiler(teachers, settings), Miner(settings)
        ensemble = TeacherEnsemble(teachers, settings.teacher_margin)
        for chunk, view in progress(todo, "profile turn", "chunk"):
            mesh = load_npz(root / "mesh" / f"{chunk.name}.npz")
            records, views, origin = turn_chunk(profiler, data, chunk, mesh, settings, faces, view)
            if not records:
                log.warning("profile: chunk %s has no usable faces", chunk.name)
                continue
            name = pass_name(chunk.name, view)
            arrays = mine_face_chunk(miner, root, records, name)
            arrays["validation"] = arrays["face_validation"][arrays["face"]]
            arrays["source_face"] = np.array(origin, np.int32)
            labels = label_views(ensemble, root, records, views, arrays["ref_box"], settings)
            cv2.imwrite(str(sheets / f"{name}.png"), contact_sheet(views))
            save_npz(work / "mine" / f"{name}.npz", **arrays)
            save_npz(work / "label" / f"{name}.npz", **labels)
    return profile_summary(work, settings)


def profile_summary(work: Path, settings: TrainingSettings) -> dict:
    """How many views were made, how many the teacher check kept, and their |yaw| / pitch spread."""
    labels = [load_npz(p) for p in sorted((work / "label").glob("synth_*.npz")) if in_training_set(p, settings)]
    if not labels:
        return {"views": 0}
    angles = np.concatenate([x["angles"] for x in labels])
    kept = np.concatenate([kept_views(x, settings) for x in labels])
    gap = np.concatenate([x["teacher_gap"] for x in labels])
    reliable = np.concatenate([x["teacher_reliable"] for x in labels])
    edges = np.arange(0, 91, 15)
    hist = np.histogram(np.abs(angles[kept, 0]), edges)[0]
    return {"views": len(angles), "kept": int(kept.sum()),
            "teacher_gap_median_deg": round(float(np.median(gap[reliable])), 2) if reliable.any() else None,
            "abs_yaw_bands": {f"{a}-{b}": int(n) for a, b, n in zip(edges[:-1], edges[1:], hist)},
            "pitch_range": [round(float(angles[kept, 1].min()), 1), round(float(angles[kept, 1].max()), 1)]}


def run_sweep(work: Path, data: Path, teachers: Path, settings: TrainingSettings, dest: Path,
              faces: int, step_deg: float, max_yaw_deg: float) -> Path:
    """A labelled folder of held-out faces turned to |yaw| 0, step, ..., max on both sides."""
    chunks = source_chunks(work)
    profiler = _profiler(teachers, settings)
    dest.mkdir(parents=True, exist_ok=True)
    rows, picked = [], 0
    targets = np.arange(0.0, max_yaw_deg + 1e-6, step_deg)
    for chunk in chunks:
        mesh_path = work / "profile" / "mesh" / f"{chunk.name}.npz"
        if not mesh_path.exists():
            raise ProfileError(f"{mesh_path} is missing: run `train profile` first")
        mesh = load_npz(mesh_path)
        frontal = (mesh["found"] & chunk.validation & (chunk.disagreement <= settings.max_disagreement_deg)
                   & (np.abs(chunk.angles[:, 0]) <= settings.sweep_max_source_yaw_deg)
                   & (np.abs(chunk.angles[:, 1]) <= settings.sweep_max_source_yaw_deg))
        for i in np.flatnonzero(frontal):
            if picked >= faces:
                break
            image = read_image(Path(data) / "faces" / str(chunk.keys[i]))
            rot = euler_to_matrix(*chunk.angles[i])
            for side in (1.0, -1.0):
                for target in targets[1:] if side < 0 else targets:
                    view = profiler.turn(image, mesh["points"][i], rot, camera_turn(side * target - chunk.angles[i][0], 0.0))
                    name = f"{chunk.name}_{i:04d}_{side * target:+03.0f}.jpg"
                    cv2.imwrite(str(dest / name), view.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                    rows.append((name, *(round(a, 3) for a in matrix_to_euler(view.rotation))))
            picked += 1
    with (dest / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("image", "yaw_deg", "pitch_deg", "roll_deg"), *rows])
    log.info("sweep: %d held-out faces, %d views in %s", picked, len(rows), dest)
    return dest
