"""FPNet's multi-task loss (the thesis's eq. 3.4 plus a rotation term) and online hard example mining.

Each task is averaged over the samples it applies to: face/no-face over positives and negatives,
box over positives and part faces, landmarks and rotation over positives (rotation only where
the teachers agree). OHEM acts on each task's per-sample losses separately, so that the many
cheap negatives never crowd the pose term out of a mini-batch; the face term has its own OHEM
setting because dropping its hardest samples drops exactly the rare profile faces.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from monitor.rotation import sixd_to_matrix

OHEM_MIDDLE_DROP_EASY = 0.5   # 'middle' drops the easiest and hardest shares of (1 - keep) equally


def rotation_loss(pred_sixd: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample loss between predicted 6D vectors and target rotations (N, 3, 3).

    'l2': the thesis's squared distance of the 6D vectors (of the orthonormalised prediction, so the
    loss measures rotation, not the scale of the raw outputs); 'geodesic': 6DRepNet's angle in radians.
    """
    pred = sixd_to_matrix(pred_sixd)
    if kind == "l2":
        return ((pred[:, :, :2] - target[:, :, :2]) ** 2).sum(dim=(1, 2))
    if kind == "geodesic":
        cos = ((pred.transpose(1, 2) @ target).diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2
        return torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
    raise ValueError(f"rotation loss {kind!r} is not known (allowed: l2, geodesic)")


def ohem(per_sample: torch.Tensor, mode: str, keep: float) -> torch.Tensor:
    """Mean of the kept per-sample losses: 'hardest' = MTCNN, 'middle' = the thesis, 'none' = all."""
    n = per_sample.numel()
    if n == 0:
        return per_sample.sum()
    if mode == "none":
        return per_sample.mean()
    k = max(1, int(round(keep * n)))
    order = torch.argsort(per_sample.detach(), descending=True)
    if mode == "hardest":
        return per_sample[order[:k]].mean()
    if mode == "middle":
        start = int((n - k) * (1 - OHEM_MIDDLE_DROP_EASY))
        return per_sample[order[start:start + k]].mean()
    raise ValueError(f"OHEM mode {mode!r} is not known (allowed: middle, hardest, none)")


def multitask_loss(logits: torch.Tensor, box: torch.Tensor, landmarks: torch.Tensor, sixd: torch.Tensor,
                   target: dict[str, torch.Tensor], settings) -> tuple[torch.Tensor, dict[str, float]]:
    """(weighted total, each term's value) for one mini-batch; settings is a TrainingSettings."""
    kind = target["kind"]
    face_mask = (kind == 0) | (kind == 1)
    box_mask = (kind == 1) | (kind == 2)
    pos = kind == 1
    rot_mask = pos & target["pose_ok"]
    terms = {
        "face": ohem(F.cross_entropy(logits[face_mask], kind[face_mask].long(), reduction="none"),
                     settings.face_ohem, settings.face_ohem_keep),
        "box": ohem(((box - target["box_reg"]) ** 2).mean(dim=1)[box_mask], settings.ohem, settings.ohem_keep),
        "landmark": ohem(((landmarks - target["landmarks"]) ** 2).mean(dim=1)[pos],
                         settings.ohem, settings.ohem_keep),
        "rotation": ohem(rotation_loss(sixd[rot_mask], target["rotation"][rot_mask], settings.rotation_loss),
                         settings.ohem, settings.ohem_keep),
    }
    weights = {"face": settings.weight_face, "box": settings.weight_box,
               "landmark": settings.weight_landmark, "rotation": settings.weight_rotation}
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
