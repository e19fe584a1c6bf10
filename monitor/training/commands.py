"""`run_monitor.py train <step>` and `run_monitor.py eval-pose`: the training tool's command line.

Heavy imports (torch training code, onnxruntime) happen inside the handlers so `--help` stays fast
and the monitor never needs the training extra.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from monitor.config import Config

log = logging.getLogger("monitor")
SHARED = Path(__file__).resolve().parents[3] / "shared"
STEPS = ("mine", "label", "train", "all", "mtfl-val")
EXIT_OK, EXIT_USAGE, EXIT_INPUT = 0, 2, 3
DEFAULT_THREADS = 2


def register(sub: argparse._SubParsersAction) -> dict:
    t = sub.add_parser("train", help="FPNet distillation steps (needs the `train` extra: onnxruntime)")
    t.add_argument("step", choices=STEPS,
                   help="mine: crops with P-Net/R-Net/O-Net; label: teacher poses; train: fit FPNet; "
                        "all: the three in order; mtfl-val: write a labels folder of MTFL validation images")
    t.add_argument("--work", type=Path, help="work folder, outside the repository "
                                             "(default ~/.cache/driver-monitor/train)")
    t.add_argument("--data", type=Path, default=SHARED / "data", help="data folder (default ../shared/data)")
    t.add_argument("--teachers", type=Path, default=SHARED / "teachers",
                   help="teacher models folder (default ../shared/teachers)")
    t.add_argument("--config", type=Path, help="configuration TOML; its [training] section is used")
    t.add_argument("--run", default="main", help="name of the training run inside WORK/runs/")
    t.add_argument("--epochs", type=int, help="override training.epochs")
    t.add_argument("--lr", type=float, help="override training.learning_rate")
    t.add_argument("--rotation-loss", choices=("l2", "geodesic"), help="override training.rotation_loss")
    t.add_argument("--ohem", choices=("middle", "hardest", "none"), help="override training.ohem")
    t.add_argument("--ohem-keep", type=float, help="override training.ohem_keep")
    t.add_argument("--face-ohem", choices=("middle", "hardest", "none"), help="override training.face_ohem")
    t.add_argument("--face-ohem-keep", type=float, help="override training.face_ohem_keep")
    t.add_argument("--batches-per-epoch", type=int, help="cap an epoch at N mini-batches (short schedules)")
    t.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch CPU threads (default {DEFAULT_THREADS}: the build machine's cores)")
    t.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    t.add_argument("--init", type=Path, help="start from this FPNet state dict instead of O-Net")
    t.add_argument("--export", type=Path, help="after training, write the best model's state dict here")

    e = sub.add_parser("eval-pose", help="full-cascade head-pose accuracy on a labelled image folder (JSON)")
    e.add_argument("--data", type=Path, required=True,
                   help="folder of images with labels.csv (image,yaw_deg,pitch_deg,roll_deg[,pose_class])")
    e.add_argument("--teachers", type=Path, help="also score the teacher ensemble on the same detected faces")
    e.add_argument("--per-image", type=Path, metavar="FILE.csv", help="write each image's predictions here")
    e.add_argument("--weights", type=Path, help="FPNet weights (default weights/fpnet.pt)")
    e.add_argument("--config", type=Path, help="configuration TOML (cascade settings)")
    return {"train": cmd_train, "eval-pose": cmd_eval_pose}


def _settings(args: argparse.Namespace, config: Config | None):
    config = config or Config()
    overrides = {k: v for k, v in {"epochs": args.epochs, "learning_rate": args.lr,
                                   "rotation_loss": args.rotation_loss, "ohem": args.ohem,
                                   "ohem_keep": args.ohem_keep, "face_ohem": args.face_ohem,
                                   "face_ohem_keep": args.face_ohem_keep}.items() if v is not None}
    return config.replace("training", **overrides).training if overrides else config.training


def cmd_train(args: argparse.Namespace, config: Config | None) -> int:
    import torch

    from monitor.training.pipeline import run_label, run_mine
    from monitor.training.store import work_folder

    settings = _settings(args, config)
    torch.set_num_threads(args.threads)
    try:
        work = work_folder(args.work)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.step in ("mine", "all"):
        run_mine(work, args.data, settings)
    if args.step in ("label", "all"):
        run_label(work, args.data, args.teachers, settings)
    if args.step in ("train", "all"):
        from monitor.training.train import train_run

        try:
            result = train_run(work, args.run, settings, resume=args.resume, init=args.init,
                               batches_per_epoch=args.batches_per_epoch, export=args.export)
        except FileExistsError as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        print(json.dumps(result))
    if args.step == "mtfl-val":
        from monitor.training.evaluate import write_mtfl_validation

        folder = write_mtfl_validation(args.data, work / "mtfl_val", settings.validation_fraction)
        print(json.dumps({"folder": str(folder)}))
    return EXIT_OK


def cmd_eval_pose(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.training.evaluate import EvalError, evaluate_folder

    try:
        result = evaluate_folder(args.data, (config or Config()).cascade, weights=args.weights,
                                 teachers=args.teachers, per_image=args.per_image)
    except EvalError as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    print(json.dumps(result))
    return EXIT_OK
