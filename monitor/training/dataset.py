"""The mined and labelled crops, joined into training arrays, and the batches drawn from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from monitor.config import TrainingSettings
from monitor.rotation import euler_to_matrix
from monitor.training.augment import Geometry, Labels, photometric, random_geometry, transform_labels, warp_view
from monitor.training.mining import CONTEXT_PX, POSITIVE
from monitor.training.store import load_npz


@dataclass
class Samples:
    crops: np.ndarray       # (N, 72, 72, 3) uint8 context crops
    kind: np.ndarray        # (N,) NEGATIVE / POSITIVE / PART
    box_reg: np.ndarray     # (N, 4) O-Net's box regression on the crop
    landmarks: np.ndarray   # (N, 10) O-Net's landmarks on the crop
    rotation: np.ndarray    # (N, 3, 3) fused teacher pose (identity where there is none)
    angles: np.ndarray      # (N, 3) fused yaw, pitch, roll (0 where there is none)
    pose_ok: np.ndarray     # (N,) a positive whose teachers agree
    validation: np.ndarray  # (N,)
    synthetic: np.ndarray   # (N,) from a view `train profile` turned

    def subset(self, mask: np.ndarray) -> "Samples":
        return Samples(**{k: v[mask] for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return len(self.kind)


_PASS = re.compile(r"synth_.+?(?:_v(\d+))?")


def pass_name(chunk: str, view: int) -> str:
    """The cache name of one pass of views over a chunk: raising profile_views_per_face only adds passes."""
    return f"synth_{chunk}" if view == 0 else f"synth_{chunk}_v{view}"


def pass_view(stem: str) -> int:
    """Which pass of `train profile` made a synth_* chunk: the inverse of `pass_name`."""
    match = _PASS.fullmatch(stem)
    if match is None:
        raise ValueError(f"{stem} is not the name of a synthesized chunk")
    return int(match.group(1) or 0)


def in_training_set(path: Path, settings: TrainingSettings) -> bool:
    """Whether a cached chunk belongs to the training set these settings describe.

    A work folder keeps every pass `train profile` ever made, so a run with fewer views per face
    than an earlier one must leave the extra passes out to train (and be summarised) on its own set.
    """
    return not path.name.startswith("synth_") or pass_view(path.stem) < settings.profile_views_per_face


def kept_views(label: dict[str, np.ndarray], settings: TrainingSettings) -> np.ndarray:
    """Synthesized views whose exact label is trained on: the teachers vet it where they are reliable."""
    return ~label["teacher_reliable"] | (label["teacher_gap"] <= settings.profile_teacher_check_deg)


def load_samples(work: Path, settings: TrainingSettings) -> Samples:
    """Every cached mine chunk, with the teacher labels of its faces (background chunks have none)."""
    parts = []
    for path in sorted((work / "mine").glob("*.npz")):
        if not in_training_set(path, settings):
            continue
        synthetic = path.name.startswith("synth_")
        chunk = load_npz(path)
        n = len(chunk["kind"])
        rot = np.tile(np.eye(3, dtype=np.float32), (n, 1, 1))
        angles = np.zeros((n, 3), np.float32)
        ok = np.zeros(n, bool)
        if path.name.startswith("face_") or synthetic:
            label_path = work / "label" / path.name
            if not label_path.exists():
                raise FileNotFoundError(f"{label_path} is missing: run `train {'profile' if synthetic else 'label'}`")
            label = load_npz(label_path)
            face = chunk["face"]
            face_rot = np.stack([euler_to_matrix(*a) for a in label["angles"]]).astype(np.float32)
            rot, angles = face_rot[face], label["angles"][face]
            if synthetic:
                trusted = kept_views(label, settings)
            else:
                trusted = label["disagreement"] <= settings.max_disagreement_deg
            ok = (chunk["kind"] == POSITIVE) & trusted[face]
        parts.append(Samples(chunk["crops"], chunk["kind"], chunk["box_reg"], chunk["landmarks"], rot, angles,
                             ok, chunk["validation"], np.full(n, synthetic)))
    if not parts:
        raise FileNotFoundError(f"no mined chunks in {work / 'mine'}: run `train mine` first")
    return Samples(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__})


def _band_weights(values: np.ndarray, band_deg: float) -> np.ndarray:
    band = np.floor(values / band_deg).astype(int)
    band -= band.min()
    counts = np.bincount(band)
    return counts.max() / counts[band]


def sampling_weights(samples: Samples, settings: TrainingSettings) -> np.ndarray:
    """Over-sample rare poses while keeping the share of positives (raised by `synth_weight` > 1).

    The photos are mostly frontal and level: big |yaw| and, above all, raised or lowered heads
    are rare, and a student trained on them as they come learns to under-state both. A face's
    weight is the product of its |yaw| band's and its pitch band's inverse frequencies, capped.
    Synthesized views can be drawn more often still (`synth_weight`): within a band they are the
    only turned heads whose labels are exact, not the teachers' compressed estimates.
    With `band_balance = "per_source"` real photos and synthesized views are balanced each among
    their own kind: jointly, the many synthesized turned heads make a large-|yaw| band look common
    and the few real faces in it are drawn no more often than a frontal face, so the student sees
    almost no real turned head and learns the synthesis's look of one instead.
    """
    w = np.ones(len(samples))
    pose = samples.pose_ok
    groups = [pose] if settings.band_balance == "joint" else [pose & ~samples.synthetic, pose & samples.synthetic]
    for group in (g for g in groups if g.any()):
        yaw_w = _band_weights(np.abs(samples.angles[group, 0]), settings.yaw_band_deg)
        pitch_w = _band_weights(samples.angles[group, 1], settings.yaw_band_deg)
        face_w = np.minimum(settings.max_band_weight, yaw_w * pitch_w)
        w[group] = face_w * group.sum() / face_w.sum()
    w[pose & samples.synthetic] *= settings.synth_weight
    return w / w.sum()


def make_batch(samples: Samples, idx: np.ndarray, rng: np.random.Generator, settings: TrainingSettings,
               augment: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    views, box, lm, rot = [], [], [], []
    for i in idx:
        geo = random_geometry(rng, settings) if augment else None
        labels = Labels(samples.box_reg[i], samples.landmarks[i], samples.rotation[i].astype(np.float64))
        if geo is None:
            view = warp_view(samples.crops[i], settings.context_scale, Geometry())
        else:
            view = photometric(warp_view(samples.crops[i], settings.context_scale, geo), rng, settings)
            labels = transform_labels(labels, CONTEXT_PX, settings.context_scale, geo)
        views.append(view)
        box.append(labels.box_reg)
        lm.append(labels.landmarks)
        rot.append(labels.rotation)
    x = torch.from_numpy(np.ascontiguousarray(np.stack(views).transpose(0, 3, 1, 2), dtype=np.float32))
    target = {"kind": torch.from_numpy(samples.kind[idx].astype(np.int64)),
              "box_reg": torch.from_numpy(np.stack(box).astype(np.float32)),
              "landmarks": torch.from_numpy(np.stack(lm).astype(np.float32)),
              "rotation": torch.from_numpy(np.stack(rot).astype(np.float32)),
              "pose_ok": torch.from_numpy(samples.pose_ok[idx])}
    return x, target

