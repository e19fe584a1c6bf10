"""`run_monitor.py train <step>` and `run_monitor.py eval-pose`: the training tool's command line.

Heavy imports (torch training code, onnxruntime) happen inside the handlers so `--help` stays fast
and the monitor never needs the training extra.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from monitor.config import Config, TrainingSettings

log = logging.getLogger("monitor")
SHARED = Path(__file__).resolve().parents[3] / "shared"
STEPS = ("mine", "label", "profile", "train", "soup", "all", "sweep", "mtfl-val")
EXIT_OK, EXIT_USAGE, EXIT_INPUT = 0, 2, 3
DEFAULT_THREADS = 2


def register(sub: argparse._SubParsersAction) -> dict:
    t = sub.add_parser("train", help="FPNet distillation steps (needs the `train` extra: onnxruntime)")
    t.add_argument("step", choices=STEPS,
                   help="mine: crops with P-Net/R-Net/O-Net; label: teacher poses; profile: large-pose views "
                        "synthesized from the labelled faces (needs ./setup.sh --mesh); train: fit FPNet; soup: "
                        "average the best models of --ingredients into one; "
                        "all: mine, label and train in order; sweep: held-out faces turned to known yaws, as an "
                        "eval-pose folder; mtfl-val: write a labels folder of MTFL validation images")
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
    t.add_argument("--synth-weight", type=float, help="override training.synth_weight")
    t.add_argument("--band-balance", choices=("joint", "per_source"), help="override training.band_balance")
    t.add_argument("--ingredients", nargs="+", metavar="RUN", help="soup: the runs whose best models are averaged")
    t.add_argument("--batches-per-epoch", type=int, help="cap an epoch at N mini-batches (short schedules)")
    t.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch CPU threads (default {DEFAULT_THREADS}: the build machine's cores)")
    t.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    t.add_argument("--init", type=Path, help="start from this FPNet state dict instead of O-Net")
    t.add_argument("--export", type=Path, help="after training, write the best model's state dict here")
    t.add_argument("--mesh-python", type=Path, help="python of the MediaPipe environment for `profile` "
                                                    "(default .venv-mesh/bin/python, made by ./setup.sh --mesh)")
    t.add_argument("--sweep-faces", type=int, default=40, help="sweep: held-out faces to turn (default 40)")
    t.add_argument("--sweep-step", type=float, default=5.0, help="sweep: yaw step in degrees (default 5)")
    t.add_argument("--sweep-max", type=float, default=75.0, help="sweep: largest |yaw| in degrees (default 75)")

    e = sub.add_parser("eval-pose", help="head-pose accuracy: full cascade on a labelled image folder, or a "
                                         "recorded session against the teachers (JSON)")
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", type=Path,
                      help="folder of images with labels.csv (image,yaw_deg,pitch_deg,roll_deg[,pose_class])")
    what.add_argument("--session", type=Path, metavar="DIR",
                      help="a `headless --record` session: its FPNet angles against the teachers on the same "
                           "frames and boxes (needs --teachers)")
    e.add_argument("--teachers", type=Path, help="also score the teacher ensemble on the same detected faces "
                                                 "(with --session: the reference)")
    e.add_argument("--per-image", type=Path, metavar="FILE.csv", help="write each image's predictions here")
    e.add_argument("--video", type=Path, help="with --session: the session's source video, read frame by frame "
                                              "(default: the session's own video.avi, which is lossy MJPG)")
    e.add_argument("--per-frame", type=Path, metavar="FILE.csv",
                   help="with --session: write each compared frame's angles here")
    e.add_argument("--weights", type=Path, help="FPNet weights (default weights/fpnet.pt)")
    e.add_argument("--config", type=Path, help="configuration TOML (cascade settings)")
    return {"train": cmd_train, "eval-pose": cmd_eval_pose}


def _settings(args: argparse.Namespace, config: Config | None):
    config = config or Config()
    overrides = {k: v for k, v in {"epochs": args.epochs, "learning_rate": args.lr,
                                   "rotation_loss": args.rotation_loss, "ohem": args.ohem,
                                   "ohem_keep": args.ohem_keep, "face_ohem": args.face_ohem,
                                   "face_ohem_keep": args.face_ohem_keep,
                                   "synth_weight": args.synth_weight,
                                   "band_balance": args.band_balance}.items() if v is not None}
    return config.replace("training", **overrides).training if overrides else config.training


def cmd_train(args: argparse.Namespace, config: Config | None) -> int:
    import torch

    from monitor.training.profile import ProfileError
    from monitor.training.soup import SoupError
    from monitor.training.store import work_folder
    from monitor.training.teachers import MissingExtra

    settings = _settings(args, config)
    torch.set_num_threads(args.threads)
    try:
        work = work_folder(args.work)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    try:
        _run_step(args, work, settings)
    except (ProfileError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    except (FileExistsError, MissingExtra, SoupError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    return EXIT_OK


def _run_step(args: argparse.Namespace, work: Path, settings: TrainingSettings) -> None:
    from monitor.training.pipeline import run_label, run_mine
    from monitor.training.profile import DEFAULT_MESH_PYTHON, run_profile, run_sweep

    if args.step in ("mine", "all"):
        run_mine(work, args.data, settings)
    if args.step in ("label", "all"):
        run_label(work, args.data, args.teachers, settings)
    if args.step == "profile":
        print(json.dumps(run_profile(work, args.data, args.teachers, settings,
                                     args.mesh_python or DEFAULT_MESH_PYTHON)))
    if args.step in ("train", "all"):
        from monitor.training.train import train_run

        print(json.dumps(train_run(work, args.run, settings, resume=args.resume, init=args.init,
                                   batches_per_epoch=args.batches_per_epoch, export=args.export)))
    if args.step == "soup":
        from monitor.training.soup import SoupError, soup_run

        if not args.ingredients:
            raise SoupError("train soup needs --ingredients RUN RUN ...: the runs to average")
        print(json.dumps(soup_run(work, args.run, args.ingredients, settings, export=args.export)))
    if args.step == "sweep":
        folder = run_sweep(work, args.data, args.teachers, settings, work / "sweep", args.sweep_faces,
                           args.sweep_step, args.sweep_max)
        print(json.dumps({"folder": str(folder)}))
    if args.step == "mtfl-val":
        from monitor.training.evaluate import write_mtfl_validation

        folder = write_mtfl_validation(args.data, work / "mtfl_val", settings.validation_fraction)
        print(json.dumps({"folder": str(folder)}))


def cmd_eval_pose(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.training.evaluate import EvalError, evaluate_folder
    from monitor.training.teachers import MissingExtra

    config = config or Config()
    misplaced = _misplaced_eval_options(args)
    if misplaced:
        log.error("%s", misplaced)
        return EXIT_USAGE
    try:
        if args.session is not None:
            result = _compare_session(args, config)
        else:
            result = evaluate_folder(args.data, config.cascade, weights=args.weights,
                                     teachers=args.teachers, per_image=args.per_image)
    except EvalError as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    except MissingExtra as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    print(json.dumps(result))
    return EXIT_OK


def _misplaced_eval_options(args: argparse.Namespace) -> str | None:
    """The options that belong to the other eval-pose mode, as a message; None if all fit."""
    if args.session is not None:
        if args.teachers is None:
            return "eval-pose --session needs --teachers DIR: the teachers are the reference"
        wrong = {"--per-image": args.per_image, "--weights": args.weights}
        mode = "--session (the angles are the recorded ones)"
    else:
        wrong = {"--video": args.video, "--per-frame": args.per_frame}
        mode = "--data (they are for --session)"
    given = [name for name, value in wrong.items() if value is not None]
    return f"{', '.join(given)} cannot be used with {mode}" if given else None


def _compare_session(args: argparse.Namespace, config: Config) -> dict:
    from monitor.training.video_compare import compare_session, ensemble_teacher

    return compare_session(args.session, lambda: ensemble_teacher(args.teachers), video=args.video,
                           settings=config.capture, per_frame=args.per_frame)
