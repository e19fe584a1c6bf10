"""The training loop: seeded, checkpointed every epoch, resumable, logged to CSV.

A run lives in WORK/runs/NAME/: `last.pt` (everything needed to continue), `best.pt` (the
FPNet state dict with the lowest validation pose error so far), `log.csv` (one row per epoch)
and `settings.json` (what it was trained with).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from monitor.config import CascadeSettings, TrainingSettings
from monitor.fpnet import FPNet, from_onet
from monitor.progress import progress
from monitor.rotation import matrix_to_euler
from monitor.training.augment import centre_view
from monitor.training.dataset import Samples, load_samples, make_batch, sampling_weights
from monitor.training.losses import multitask_loss
from monitor.training.mining import NEGATIVE, POSITIVE

log = logging.getLogger(__name__)
LOG_FIELDS = ("epoch", "lr", "batches", "loss", "face", "box", "landmark", "rotation",
              "val_yaw", "val_pitch", "val_roll", "val_mean", "val_real_mean", "val_synth_mean",
              "val_face_recall", "val_false_positive", "val_landmark_rmse")
EVAL_BATCH = 512


def initial_model(settings: TrainingSettings, init: Path | None) -> FPNet:
    net = FPNet(settings.dropout)
    state = from_onet().state_dict() if init is None else torch.load(init, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net


def validation_views(val: Samples, settings: TrainingSettings) -> torch.Tensor:
    """The validation crops as FPNet sees them: centred, un-augmented, (N, 3, 48, 48) float."""
    return torch.from_numpy(np.ascontiguousarray(
        centre_view(val.crops, settings.context_scale).transpose(0, 3, 1, 2), dtype=np.float32))


@torch.no_grad()
def validate(net: FPNet, views: torch.Tensor, samples: Samples) -> dict[str, float]:
    """Pose MAE against the fused teachers, detection rates and landmark error on un-augmented views."""
    net.eval()
    outs = [net(views[i:i + EVAL_BATCH]) for i in range(0, len(views), EVAL_BATCH)]
    prob = torch.cat([o.face_prob for o in outs]).numpy()
    rot = FPNet.rotation(torch.cat([o.sixd for o in outs])).numpy()
    lm = torch.cat([o.landmarks for o in outs]).numpy()
    threshold = CascadeSettings().fpnet_threshold
    pos, neg, pose = samples.kind == POSITIVE, samples.kind == NEGATIVE, samples.pose_ok
    pred = np.array([matrix_to_euler(r) for r in rot[pose]]).reshape(-1, 3)
    abs_err = np.abs(pred - samples.angles[pose])
    err = abs_err.mean(axis=0) if pose.any() else np.full(3, np.nan)
    synth = samples.synthetic[pose]
    return {"val_yaw": err[0], "val_pitch": err[1], "val_roll": err[2], "val_mean": float(err.mean()),
            "val_real_mean": float(abs_err[~synth].mean()) if (~synth).any() else None,
            "val_synth_mean": float(abs_err[synth].mean()) if synth.any() else None,
            "val_face_recall": float((prob[pos] > threshold).mean()),
            "val_false_positive": float((prob[neg] > threshold).mean()),
            "val_landmark_rmse": float(np.sqrt(((lm[pos] - samples.landmarks[pos]) ** 2).mean()))}


def train_run(work: Path, name: str, settings: TrainingSettings, resume: bool = False, init: Path | None = None,
              batches_per_epoch: int | None = None, export: Path | None = None,
              samples: Samples | None = None) -> dict:
    """Train (or continue) one run; returns the best validation figures and where the model is."""
    folder = work / "runs" / name
    last, best_path, log_path = folder / "last.pt", folder / "best.pt", folder / "log.csv"
    if last.exists() and not resume:
        raise FileExistsError(f"run {folder} exists: pass --resume to continue it or choose another --run")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(
        {**dataclasses.asdict(settings), "init": str(init) if init else None,
         "batches_per_epoch": batches_per_epoch}, indent=1))
    torch.manual_seed(settings.seed)
    samples = samples if samples is not None else load_samples(work, settings)
    train, val = samples.subset(~samples.validation), samples.subset(samples.validation)
    val_views = validation_views(val, settings)
    weights = sampling_weights(train, settings)
    net = initial_model(settings, init)
    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    rng = np.random.default_rng(settings.seed)
    epoch, best = 0, {"val_mean": float("inf")}
    if resume and last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        epoch, best = ckpt["epoch"], ckpt["best"]
        log.info("resuming %s at epoch %d", folder, epoch)
    n_batches = batches_per_epoch or max(1, len(train) // settings.batch_size)
    while epoch < settings.epochs:
        lr = settings.learning_rate * settings.lr_decay ** epoch
        for group in opt.param_groups:
            group["lr"] = lr
        net.train()
        sums: dict[str, float] = {}
        for _ in progress(range(n_batches), f"epoch {epoch + 1}/{settings.epochs}", "batch"):
            idx = rng.choice(len(train), settings.batch_size, p=weights)
            x, target = make_batch(train, idx, rng, settings, augment=True)
            f = net.features(x)   # once for all four heads (forward() would softmax the face logits)
            total, terms = multitask_loss(net.dense6_1(f), net.dense6_2(f), net.dense6_3(f), net.dense6_4(f),
                                          target, settings)
            opt.zero_grad()
            total.backward()
            opt.step()
            for k, v in {"loss": float(total.detach()), **terms}.items():
                sums[k] = sums.get(k, 0.0) + v
        epoch += 1
        row = {"epoch": epoch, "lr": lr, "batches": n_batches, **{k: v / n_batches for k, v in sums.items()},
               **validate(net, val_views, val)}
        if row["val_mean"] < best["val_mean"]:
            best = {k: row[k] for k in LOG_FIELDS}
            torch.save(net.state_dict(), best_path)
        _append(log_path, row)
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "epoch": epoch, "best": best}, last.with_suffix(".tmp"))
        last.with_suffix(".tmp").replace(last)
        log.info("epoch %d: %s", epoch, {k: round(float(v), 4) for k, v in row.items() if v is not None})
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.load(best_path, map_location="cpu", weights_only=True), export)
    return {"run": str(folder), "best": best, "best_model": str(best_path)}


def _append(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
