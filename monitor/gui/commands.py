"""`run_monitor.py gui` (also what runs when no command is given): the desktop monitor window.

Qt is imported inside the handler only, so `run_monitor.py --help` stays fast and works on a
machine without a display. `--stats` prints one JSON line with the measured frame rate and
latencies when the window closes (with `--max-seconds` it closes by itself): that is how the
README's performance figures are measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from monitor.config import Config

log = logging.getLogger(__name__)


def has_display() -> bool:
    """Qt aborts the whole process when it finds no display; check first and say so instead."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def register(sub: argparse._SubParsersAction) -> dict:
    g = sub.add_parser("gui", help="the desktop monitor window (the default when no command is given)")
    g.add_argument("--source", help="camera index or video file (default: camera 0)")
    g.add_argument("--config", type=Path, help="configuration TOML; the window's Save writes back to it")
    g.add_argument("--record-dir", type=Path, help="where recorded sessions go (default: ~/driver-monitor-sessions)")
    g.add_argument("--no-audio", action="store_true", help="no sound; alerts still show")
    g.add_argument("--max-seconds", type=float, metavar="N", help="close the window after N seconds")
    g.add_argument("--screenshot", type=Path, metavar="PNG", help="save a picture of the window when it closes "
                   "by itself (with --max-seconds or --stats)")
    g.add_argument("--stats", action="store_true",
                   help="close at the end of the source and print fps and latency (processing, "
                        "capture-to-result, capture-to-screen) as JSON")
    return {"gui": cmd_gui}


def cmd_gui(args: argparse.Namespace, config: Config | None) -> int:
    """Also called for the bare `run_monitor.py [--source S] [--config F]`, whose namespace lacks the extras."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from monitor.cli import EXIT_OK, EXIT_USAGE
    from monitor.gui.app import DEFAULT_RECORD_ROOT, MS_PER_S, MonitorWindow

    if not has_display():
        log.error("there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set): "
                  "run `run_monitor.py headless --source ...` instead, or set QT_QPA_PLATFORM=offscreen")
        return EXIT_USAGE
    max_seconds = getattr(args, "max_seconds", None)
    if max_seconds is not None and max_seconds <= 0:
        log.error("--max-seconds must be a positive number of seconds, got %s", max_seconds)
        return EXIT_USAGE
    stats = getattr(args, "stats", False)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MonitorWindow(config or Config(), source=args.source or "0", config_path=args.config,
                           record_root=getattr(args, "record_dir", None) or DEFAULT_RECORD_ROOT,
                           audio=not getattr(args, "no_audio", False), keep_timings=stats)
    window.show()
    screenshot = getattr(args, "screenshot", None)

    def finish() -> None:
        if screenshot is not None and window.isVisible():
            window.grab().save(str(screenshot))
        window.close()

    if stats:
        window.source_ended.connect(finish)   # a measurement ends with its video
    if max_seconds is not None:
        QTimer.singleShot(round(max_seconds * MS_PER_S), finish)
    app.exec()
    if stats:
        print(json.dumps(window.measurements()))
    return EXIT_OK
