"""`eval-pose`: head-pose accuracy of the full cascade (detection included) on an image folder.

Scoring the whole cascade, not ground-truth crops, is the point: FPNet sees whatever box R-Net
hands it, so a pose head that only works on perfect crops would look better here than it is.
The teachers, when given, are scored on the same detected faces with their own crop.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

from monitor.capture import IMAGE_SUFFIXES
from monitor.cascade import Cascade
from monitor.config import CascadeSettings, TrainingSettings
from monitor.fpnet import DEFAULT_WEIGHTS
from monitor.training.datasets import read_faces

ANGLES = ("yaw", "pitch", "roll")
LEFT_CLASSES, FRONTAL_CLASS, RIGHT_CLASSES = (1, 2), 3, (4, 5)   # MTFL; left = toward the image left = yaw > 0
MTFL_SOURCES = ("net_7876", "lfw")
DECIMALS = 3
# Error by |yaw| band. 30 deg is where a turn starts to count as looking away (the default
# attention.yaw_away_deg, and issue 8's threshold); 60 deg is about where the real training faces
# run out. The top band keeps its upper edge; faces turned past profile (> 90 deg) are in no band,
# only in the ">= 30" aggregate.
YAW_BANDS_DEG = (0.0, 30.0, 60.0, 90.0)
LARGE_YAW_DEG = YAW_BANDS_DEG[1]
# Monotonicity of yaw (issue 8: "monotonic and unsaturated up to 75 deg"): a straight-line fit of
# predicted against true |yaw| up to FIT_MAX_YAW_DEG, and the mean prediction per FIT_BAND_DEG band.
FIT_MAX_YAW_DEG = 75.0
FIT_BAND_DEG = 15.0


class EvalError(ValueError):
    """The evaluation folder, its labels or the weights are unusable."""


def read_labels(folder: Path) -> list[dict]:
    """Rows of labels.csv (image plus optional yaw/pitch/roll and pose_class); every image if absent."""
    path = folder / "labels.csv"
    if not folder.is_dir():
        raise EvalError(f"{folder} is not a folder")
    if not path.is_file():
        images = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise EvalError(f"{folder} holds no labels.csv and no images ({', '.join(IMAGE_SUFFIXES)})")
        return [{"image": name} for name in images]
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "image" not in rows[0]:
        raise EvalError(f"{path} needs an 'image' column (and yaw_deg,pitch_deg,roll_deg and/or pose_class)")
    out = []
    for row in rows:
        item: dict = {"image": row["image"]}
        try:
            if all(row.get(f"{a}_deg") not in (None, "") for a in ANGLES):
                item["label"] = np.array([float(row[f"{a}_deg"]) for a in ANGLES])
            if row.get("pose_class"):
                item["pose_class"] = int(row["pose_class"])
        except ValueError as exc:
            raise EvalError(f"{path}, image {row['image']}: {exc} (angles in degrees, pose_class 1..5)") from exc
        out.append(item)
    return out


def mae(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    if not len(pred):
        return {a: None for a in (*ANGLES, "mean")}
    err = np.abs(np.asarray(pred) - np.asarray(truth)).mean(axis=0)
    return {**{a: round(float(e), DECIMALS) for a, e in zip(ANGLES, err)}, "mean": round(float(err.mean()), DECIMALS)}


def yaw_bands(abs_yaw: np.ndarray, edges: tuple[float, ...] = YAW_BANDS_DEG) -> list[tuple[str, np.ndarray]]:
    """(name, mask) per band of `edges`: [lo, hi), except the last, which includes hi."""
    out = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        upper = abs_yaw <= hi if i == len(edges) - 2 else abs_yaw < hi
        out.append((f"{lo:g}-{hi:g}", (abs_yaw >= lo) & upper))
    return out


def errors_by_yaw(truth: np.ndarray, preds: dict[str, np.ndarray], count_key: str = "faces") -> dict:
    """MAE of each prediction per |true yaw| band, and over all faces with |yaw| >= LARGE_YAW_DEG:
    a mean over every face hides the turned heads, which are few but are what alerts depend on."""
    truth = np.asarray(truth, dtype=float).reshape(-1, 3)
    preds = {k: np.asarray(p, dtype=float).reshape(-1, 3) for k, p in preds.items()}
    abs_yaw = np.abs(truth[:, 0])

    def scores(mask: np.ndarray) -> dict:
        return {count_key: int(mask.sum()), **{k: mae(p[mask], truth[mask]) for k, p in preds.items()}}

    return {"bands": {name: scores(mask) for name, mask in yaw_bands(abs_yaw)},
            "large": scores(abs_yaw >= LARGE_YAW_DEG)}


def yaw_fit(true_yaw: np.ndarray, pred_yaw: np.ndarray) -> dict:
    """How predicted yaw follows true yaw, both directions folded into one (x = |true|, y = predicted
    with the true sign removed; a true 0 counts as positive). Slope 1 and intercept 0 is perfect; a
    slope well below 1, or band means that stop rising, is the under-stated, saturating yaw that
    would miss a looking-away alert."""
    true_yaw, pred_yaw = np.asarray(true_yaw, dtype=float), np.asarray(pred_yaw, dtype=float)
    keep = np.abs(true_yaw) <= FIT_MAX_YAW_DEG
    x = np.abs(true_yaw[keep])
    y = pred_yaw[keep] * np.where(true_yaw[keep] < 0, -1.0, 1.0)
    slope = intercept = None
    if len(np.unique(x)) >= 2:
        slope, intercept = (round(float(v), DECIMALS) for v in np.polyfit(x, y, 1))
    edges = tuple(np.arange(0.0, FIT_MAX_YAW_DEG + FIT_BAND_DEG / 2, FIT_BAND_DEG))
    band_means = [{"band": name, "faces": int(mask.sum()),
                   "mean": round(float(y[mask].mean()), DECIMALS) if mask.any() else None}
                  for name, mask in yaw_bands(x, edges)]
    means = [b["mean"] for b in band_means if b["mean"] is not None]
    monotonic = bool(np.all(np.diff(means) > 0)) if len(means) >= 2 else None
    return {"faces": int(keep.sum()), "slope": slope, "intercept": intercept,
            "band_means": band_means, "monotonic": monotonic}


def yaw_direction(yaws: list[float], classes: list[int]) -> dict:
    """Share of non-frontal faces whose yaw sign matches the MTFL left/right class."""
    pairs = [(y, c) for y, c in zip(yaws, classes) if c in LEFT_CLASSES + RIGHT_CLASSES]
    if not pairs:
        return {"faces": 0, "accuracy": None}
    right = sum((y > 0) == (c in LEFT_CLASSES) for y, c in pairs)
    return {"faces": len(pairs), "accuracy": round(right / len(pairs), 4)}


def evaluate_folder(folder: Path, settings: CascadeSettings, weights: Path | None = None,
                    teachers: Path | None = None, per_image: Path | None = None) -> dict:
    folder = Path(folder)
    rows = read_labels(folder)
    weights = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not weights.is_file():
        raise EvalError(f"FPNet weights {weights} not found: train them or pass --weights")
    cascade = Cascade(settings, fpnet_weights=weights)
    ensemble = None
    if teachers is not None:
        from monitor.training.teachers import TeacherEnsemble, fuse

        ensemble = TeacherEnsemble(teachers, margin=TrainingSettings().teacher_margin)
    labelled = any("label" in r for r in rows)
    if not labelled and ensemble is None and not any("pose_class" in r for r in rows):
        raise EvalError(f"{folder} has no yaw_deg,pitch_deg,roll_deg or pose_class labels: pass --teachers "
                        "to score agreement with the teacher ensemble instead")
    results = []
    for row in rows:
        image = cv2.imread(str(folder / row["image"]), cv2.IMREAD_COLOR)
        if image is None:
            raise EvalError(f"cannot read image {folder / row['image']}")
        faces = cascade.detect(image)
        res = {**row, "face": None, "teacher": None}
        if faces:
            face = max(faces, key=lambda f: f.size)   # the driver is the largest face
            res["face"] = face
            res["fpnet"] = np.array([face.yaw, face.pitch, face.roll])
            if ensemble is not None:
                p = fuse(ensemble.angles(image, face.box))
                res["teacher"] = np.array([p.yaw, p.pitch, p.roll])
        results.append(res)
    found = [r for r in results if r["face"] is not None]
    summary: dict = {"images": len(results), "detected": len(found)}
    with_label = [r for r in found if "label" in r]
    if labelled:
        summary["fpnet"] = mae([r["fpnet"] for r in with_label], [r["label"] for r in with_label])
        if ensemble is not None:
            summary["teachers"] = mae([r["teacher"] for r in with_label], [r["label"] for r in with_label])
        summary.update(_yaw_summary(with_label, ensemble is not None))
    elif ensemble is not None:
        summary["agreement"] = mae([r["fpnet"] for r in found], [r["teacher"] for r in found])
    with_class = [r for r in found if "pose_class" in r]
    if with_class:
        classes = [r["pose_class"] for r in with_class]
        summary["yaw_direction"] = {"fpnet": yaw_direction([r["fpnet"][0] for r in with_class], classes)}
        if ensemble is not None:
            summary["yaw_direction"]["teachers"] = yaw_direction([r["teacher"][0] for r in with_class], classes)
    if per_image is not None:
        write_per_image(Path(per_image), results)
    return summary


def _yaw_summary(with_label: list[dict], teachers: bool) -> dict:
    """The per-band and fit keys of a labelled folder's summary."""
    truth = np.array([r["label"] for r in with_label]).reshape(-1, 3)
    preds = {"fpnet": np.array([r["fpnet"] for r in with_label]).reshape(-1, 3)}
    if teachers:
        preds["teachers"] = np.array([r["teacher"] for r in with_label]).reshape(-1, 3)
    by_yaw = errors_by_yaw(truth, preds)
    out = {"yaw_bands": by_yaw["bands"], "yaw_30_plus": by_yaw["large"],
           "yaw_fit": yaw_fit(truth[:, 0], preds["fpnet"][:, 0])}
    if teachers:
        out["yaw_fit_teachers"] = yaw_fit(truth[:, 0], preds["teachers"][:, 0])
    return out


def write_per_image(path: Path, results: list[dict]) -> None:
    fields = ["image", "detected", "x1", "y1", "x2", "y2", "score", "yaw", "pitch", "roll",
              "teacher_yaw", "teacher_pitch", "teacher_roll", "label_yaw", "label_pitch", "label_roll", "pose_class"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            row = {"image": r["image"], "detected": int(r["face"] is not None), "pose_class": r.get("pose_class", "")}
            if r["face"] is not None:
                row.update(zip(("x1", "y1", "x2", "y2"), (round(float(v), 1) for v in r["face"].box)))
                row["score"] = round(r["face"].score, 4)
                row.update(zip(ANGLES, (round(float(v), 2) for v in r["fpnet"])))
            if r["teacher"] is not None:
                row.update(zip(("teacher_yaw", "teacher_pitch", "teacher_roll"), (round(float(v), 2) for v in r["teacher"])))
            if "label" in r:
                row.update(zip(("label_yaw", "label_pitch", "label_roll"), (round(float(v), 2) for v in r["label"])))
            writer.writerow(row)


def write_mtfl_validation(data: Path, dest: Path, validation_fraction: float) -> Path:
    """A folder of links to the held-out MTFL-labelled photos with labels.csv (image,pose_class)."""
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for source in MTFL_SOURCES:
        for rec in read_faces(data, source, validation_fraction):
            if rec.validation and rec.pose_class:
                name = f"{source}__{rec.image}"
                link = dest / name
                if not link.exists():
                    os.symlink((Path(data) / "faces" / source / rec.image).resolve(), link)
                rows.append((name, rec.pose_class))
    with (dest / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("image", "pose_class"), *rows])
    return dest
