"""Command line: `python run_monitor.py [SUBCOMMAND] ...`.

Exit codes: 0 done; 2 bad command line or configuration; 3 a source or input that cannot be
read (missing camera, file, folder, session); 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from monitor.config import Config, ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INPUT = 0, 1, 2, 3
log = logging.getLogger("monitor")


# Feature packages add their own subcommands through `register(subparsers) -> {name: handler}`;
# those modules import their heavy dependencies inside the handlers, so `--help` stays fast.
EXTENSIONS: tuple[str, ...] = ("monitor.bench", "monitor.training.commands", "monitor.gui.commands",
                               "monitor.session_tools")
DEFAULT_COMMAND = "gui"   # what runs when no command is given: the desktop window


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="run_monitor.py",
                                     description="Webcam driver-attention monitor (head pose, alerts, sessions).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("--source", help="with no command: the window's camera index or video file (default 0)")
    parser.add_argument("--config", type=Path, help="with no command: the window's configuration TOML")
    sub = parser.add_subparsers(dest="command")

    h = sub.add_parser("headless", help="run without a window; one JSON line per alert phase on stdout")
    h.add_argument("--source", required=True, help="camera index (0), video file or image folder")
    h.add_argument("--config", type=Path, help="configuration TOML (default: built-in defaults)")
    h.add_argument("--record", type=Path, metavar="DIR", help="save the session into this new folder")
    h.add_argument("--fast", action="store_true", help="process files as fast as possible, dropping no frame")
    h.add_argument("--max-seconds", type=float, metavar="N", help="stop after N seconds of input")
    h.add_argument("--no-audio", action="store_true", help="no sound; alerts still print")

    r = sub.add_parser("replay", help="re-run smoother + attention on a recorded session or pose CSV")
    r.add_argument("path", type=Path, help="session folder or CSV with t,face,yaw_deg,pitch_deg,roll_deg")
    r.add_argument("--config", type=Path, help="configuration TOML (default: the session's own, else defaults)")

    a = sub.add_parser("annotate", help="draw faces and pose on images; write DEST/results.csv")
    a.add_argument("src", type=Path, help="an image or a folder of images")
    a.add_argument("dest", type=Path, help="output folder")
    a.add_argument("--config", type=Path, help="configuration TOML (cascade settings)")

    c = sub.add_parser("config", help="print the default configuration as TOML (a starting point to edit)")
    c.add_argument("--config", type=Path, help="validate this file and print it with defaults filled in")

    commands = dict(COMMANDS)
    for name in EXTENSIONS:
        commands.update(importlib.import_module(name).register(sub))
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    if args.command is None:
        args.command = DEFAULT_COMMAND
    try:
        config = Config.load(args.config) if getattr(args, "config", None) else None
        return commands[args.command](args, config)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except (FileNotFoundError, NotADirectoryError) as exc:
        log.error("%s", exc)
        return EXIT_INPUT


def cmd_headless(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.capture import SourceError
    from monitor.headless import RunOptions, run
    from monitor.recorder import RecorderError

    if args.max_seconds is not None and args.max_seconds <= 0:
        log.error("--max-seconds must be a positive number of seconds, got %s", args.max_seconds)
        return EXIT_USAGE
    options = RunOptions(source=args.source, record=args.record, fast=args.fast,
                         max_seconds=args.max_seconds, audio=not args.no_audio)
    try:
        run(config or Config(), options)
    except (SourceError, RecorderError) as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.headless import summary
    from monitor.sessions import SessionError, read_pose_csv, replay, resolve, session_config

    try:
        csv_path, _ = resolve(args.path)
        trace = read_pose_csv(csv_path)
        config = session_config(args.path, config)
    except SessionError as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    events = replay(trace.samples, config)
    for event in events:
        print(json.dumps(event.to_json()))
    samples = trace.samples
    print(json.dumps(summary(len(samples), samples[0].t if samples else None, samples[-1].t if samples else None,
                             Counter(e.kind for e in events if e.phase == "start"),
                             {"skipped_rows": sum(trace.skipped.values())})))
    return EXIT_OK


def cmd_annotate(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.annotate import annotate
    from monitor.cascade import Cascade

    cascade = Cascade((config or Config()).cascade)
    if not cascade.pose_trained:
        log.warning("head pose unavailable (weights/fpnet.pt missing): pose columns are left empty")
    counts = annotate(args.src, args.dest, cascade)
    print(json.dumps({"type": "summary", **counts, "results": str(args.dest / "results.csv")}))
    return EXIT_OK


def cmd_config(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.config import to_toml

    sys.stdout.write(to_toml((config or Config()).to_dict()))
    return EXIT_OK


COMMANDS = {"headless": cmd_headless, "replay": cmd_replay, "annotate": cmd_annotate, "config": cmd_config}
