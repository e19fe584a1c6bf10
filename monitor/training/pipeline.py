"""The `mine` and `label` steps: chunked, cached and resumable.

Each chunk of source images becomes one file in the work folder; a step skips the chunks that
already exist, so a killed run loses at most one chunk.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import cv2
import numpy as np

from monitor.cascade import square
from monitor.config import TrainingSettings
from monitor.progress import progress
from monitor.rotation import matrix_to_sixd
from monitor.training.datasets import FACE_SOURCES, FaceRecord, is_validation, read_backgrounds, read_faces
from monitor.training.mining import (NEGATIVE, PART, POSITIVE, Miner, apply_box_map, centre_inside,
                                     classify, fit_box_map, inside_negatives, iou_many, match_reference,
                                     random_squares)
from monitor.training.store import load_npz, save_npz

log = logging.getLogger(__name__)
CHUNK = 500


def _rng(settings: TrainingSettings, name: str) -> np.random.Generator:
    return np.random.default_rng([settings.seed, zlib.crc32(name.encode())])


def _pick(rng: np.random.Generator, boxes: np.ndarray, count: int) -> np.ndarray:
    if len(boxes) <= count:
        return boxes
    return boxes[rng.choice(len(boxes), count, replace=False)]


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image


def face_samples(miner: Miner, image: np.ndarray, ref: np.ndarray, landmarks: np.ndarray,
                 rng: np.random.Generator, proposals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(boxes, kinds) chosen from one face image: positives, parts, 2 outside : 1 inside negatives."""
    s = miner.settings
    ref_sq = square(ref[None])[0]
    kinds = classify(iou_many(proposals, ref_sq), s)
    negs = proposals[kinds == NEGATIVE]
    inside = centre_inside(negs, ref_sq)
    inner = np.concatenate([negs[inside], inside_negatives(ref_sq, landmarks, s.inside_negative_size,
                                                           s.negative_iou)])
    outer = negs[~inside]
    h, w = image.shape[:2]
    if len(outer) < s.outside_negatives_per_face:
        outer = np.concatenate([outer, random_squares(rng, h, w, s.outside_negatives_per_face - len(outer),
                                                      ref_sq, s.negative_iou)])
    groups = [(ref_sq[None], POSITIVE),
              (_pick(rng, proposals[kinds == POSITIVE], s.positives_per_face), POSITIVE),
              (_pick(rng, proposals[kinds == PART], s.parts_per_face), PART),
              (_pick(rng, outer, s.outside_negatives_per_face), NEGATIVE),
              (_pick(rng, inner, s.inside_negatives_per_face), NEGATIVE)]
    boxes = np.concatenate([g for g, _ in groups]).astype(np.float32)
    return boxes, np.concatenate([np.full(len(g), k, np.int8) for g, k in groups])


def mine_face_chunk(miner: Miner, data: Path, records: list[FaceRecord], name: str) -> dict[str, np.ndarray]:
    rng = _rng(miner.settings, name)
    found, refs = [], []
    for rec in records:
        image = read_image(data / "faces" / rec.source / rec.image)
        boxes, _ = miner.proposals(image)
        det = miner.detections(boxes, miner.targets(image, boxes))
        k = match_reference(det, rec.box, rec.landmarks)
        found.append((image, boxes))
        refs.append(None if k is None else det[k])
    matched = [i for i, r in enumerate(refs) if r is not None]
    params = fit_box_map(np.stack([records[i].box for i in matched]), np.stack([refs[i] for i in matched]))
    out: dict[str, list] = {k: [] for k in ("crops", "kind", "face", "box_reg", "landmarks", "onet_prob")}
    for i, (rec, (image, proposals)) in enumerate(zip(records, found)):
        ref = refs[i] if refs[i] is not None else apply_box_map(rec.box, params)
        refs[i] = ref
        boxes, kinds = face_samples(miner, image, ref, rec.landmarks, rng, proposals)
        t = miner.targets(image, boxes)
        out["crops"].append(miner.context_crops(image, boxes))
        out["kind"].append(kinds)
        out["face"].append(np.full(len(boxes), i, np.int32))
        out["box_reg"].append(t.box_reg)
        out["landmarks"].append(t.landmarks)
        out["onet_prob"].append(t.face_prob)
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    arrays.update(face_key=np.array([r.key for r in records]), ref_box=np.stack(refs).astype(np.float32),
                  ref_from_onet=np.array([i in set(matched) for i in range(len(records))]),
                  pose_class=np.array([r.pose_class for r in records], np.int8),
                  face_validation=np.array([r.validation for r in records]),
                  annotated_landmarks=np.stack([r.landmarks for r in records]).astype(np.float32),
                  box_map=params.astype(np.float32))
    return arrays


def mine_background_chunk(miner: Miner, paths: list[Path], name: str,
                          validation_fraction: float) -> dict[str, np.ndarray]:
    """Hard negatives (the boxes R-Net likes most) plus random squares, from face-free images."""
    rng = _rng(miner.settings, name)
    per = miner.settings.crops_per_background
    crops, val = [], []
    for path in paths:
        image = read_image(path)
        boxes, prob = miner.proposals(image)
        hard = boxes[np.argsort(-prob)[: per // 2]]
        h, w = image.shape[:2]
        boxes = np.concatenate([hard, random_squares(rng, h, w, per - len(hard), None, 1.0)])
        crops.append(miner.context_crops(image, boxes))
        key = f"{path.parent.name}/{path.name}"
        val.append(np.full(len(boxes), is_validation(key, validation_fraction)))
    n = sum(len(c) for c in crops)
    t_zero = np.zeros((n, 4), np.float32)
    return dict(crops=np.concatenate(crops), kind=np.full(n, NEGATIVE, np.int8), face=np.full(n, -1, np.int32),
                box_reg=t_zero, landmarks=np.zeros((n, 10), np.float32), onet_prob=np.zeros(n, np.float32),
                validation=np.concatenate(val))


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_mine(work: Path, data: Path, settings: TrainingSettings) -> list[Path]:
    folder = work / "mine"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for source in FACE_SOURCES:
        for k, part in enumerate(chunks(read_faces(data, source, settings.validation_fraction), CHUNK)):
            jobs.append((folder / f"face_{source}_{k:03d}.npz", ("face", part)))
    for k, part in enumerate(chunks(read_backgrounds(data), CHUNK)):
        jobs.append((folder / f"background_{k:03d}.npz", ("background", part)))
    todo = [(p, j) for p, j in jobs if not p.exists()]
    log.info("mine: %d of %d chunks cached, %d to do", len(jobs) - len(todo), len(jobs), len(todo))
    if todo:
        miner = Miner(settings)
        for path, (kind, part) in progress(todo, "mine", "chunk"):
            if kind == "face":
                arrays = mine_face_chunk(miner, data, part, path.stem)
                arrays["validation"] = arrays["face_validation"][arrays["face"]]
            else:
                arrays = mine_background_chunk(miner, part, path.stem, settings.validation_fraction)
            save_npz(path, **arrays)
    return [p for p, _ in jobs]


def run_label(work: Path, data: Path, teachers: Path, settings: TrainingSettings) -> list[Path]:
    """Teacher pose of every mined face, on the FSA-Net crop around its reference box."""
    from monitor.training.teachers import TeacherEnsemble, fuse

    out_folder = work / "label"
    out_folder.mkdir(parents=True, exist_ok=True)
    mined = sorted((work / "mine").glob("face_*.npz"))
    if not mined:
        raise FileNotFoundError(f"no mined chunks in {work / 'mine'}: run `train mine` first")
    todo = [p for p in mined if not (out_folder / p.name).exists()]
    log.info("label: %d of %d chunks cached", len(mined) - len(todo), len(mined))
    ensemble = TeacherEnsemble(teachers, settings.teacher_margin) if todo else None
    for path in progress(todo, "label", "chunk"):
        chunk = load_npz(path)
        angles, fused, sixd, spread = [], [], [], []
        for key, box in zip(chunk["face_key"], chunk["ref_box"]):
            source, name = str(key).split("/", 1)
            image = read_image(data / "faces" / source / name)
            raw = ensemble.angles(image, box)
            pose = fuse(raw)
            angles.append(raw)
            fused.append([pose.yaw, pose.pitch, pose.roll])
            sixd.append(matrix_to_sixd(pose.rotation))
            spread.append(pose.disagreement_deg)
        save_npz(out_folder / path.name, teacher_angles=np.array(angles, np.float32),
                 angles=np.array(fused, np.float32), sixd=np.array(sixd, np.float32),
                 disagreement=np.array(spread, np.float32))
    return [out_folder / p.name for p in mined]
