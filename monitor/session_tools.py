"""Subcommands for working with sessions: `scenarios`, `tune`, `report` and `browse`.

Each handler imports what it needs when it runs, so `run_monitor.py --help` stays fast. The
computing lives in `monitor.scenarios`, `monitor.tune`, `monitor.report` and
`monitor.session_metrics`; this module only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import Config, ConfigError

if TYPE_CHECKING:
    from monitor.scenarios import ScenarioResult
    from monitor.tune import TuneResult

log = logging.getLogger("monitor")
DEFAULT_FPS = "10,15,30"


def register(sub: argparse._SubParsersAction) -> dict:
    s = sub.add_parser("scenarios", help="run the synthetic driver stories through the attention engine; "
                                         "print a pass/fail table (exit 0 only if all pass)")
    s.add_argument("--fps", default=DEFAULT_FPS, help=f"comma-separated frame rates (default {DEFAULT_FPS})")
    s.add_argument("--config", type=Path, help="configuration TOML whose [attention] is tested")
    s.add_argument("--seed", type=int, default=0, help="seed of the stories' noise (default 0)")
    s.add_argument("--only", help="comma-separated story names (default: all)")

    t = sub.add_parser("tune", help="replay sessions under a grid of settings; alerts per hour and, with "
                                    "labels.csv, recall and false alerts; recommends a setting")
    t.add_argument("sessions", type=Path, nargs="+", metavar="SESSION", help="session folders (or pose CSVs)")
    t.add_argument("--grid", action="append", required=True, metavar="KEY=START:STOP:STEP",
                   help="a configuration key and its values, e.g. attention.looking_away_s=2:4:0.5 "
                        "(or KEY=V1,V2); repeat for more keys")
    t.add_argument("--config", type=Path, help="base configuration (default: the first session's own)")
    t.add_argument("--max-false-per-hour", type=float, default=None, metavar="N",
                   help="false alerts per hour a recommended setting may have (default 1)")
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.add_argument("--write-config", type=Path, metavar="F",
                   help="save the base configuration with the recommended setting as TOML")

    r = sub.add_parser("report", help="one-page report of a session (yaw/pitch timeline, alerts, figures)")
    r.add_argument("session", type=Path, help="session folder (or pose CSV)")
    r.add_argument("--out", type=Path, help="report.html or report.png (default: SESSIONNAME-report.html here)")
    r.add_argument("--config", type=Path, help="report under this configuration (default: the session's own)")

    b = sub.add_parser("browse", help="session browser window: scrub video and poses, compare alerts, label")
    b.add_argument("session", type=Path, nargs="?", help="session folder to open")
    b.add_argument("--config", type=Path, help="thresholds for the 'would fire now' alerts (default: the session's)")
    return {"scenarios": cmd_scenarios, "tune": cmd_tune, "report": cmd_report, "browse": cmd_browse}


# ---- scenarios --------------------------------------------------------------------------------

def parse_fps(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not 0 < v < float("inf") for v in values):
        raise ConfigError(f"--fps {text!r} must be comma-separated positive frame rates, e.g. 10,15,30")
    return values


def scenario_table(results: list[tuple[float, ScenarioResult]]) -> list[str]:
    """One line per story and frame rate: PASS/FAIL, the latency of each expected alert from the
    onset of its condition, and the first failure."""
    name_w = max([len("scenario")] + [len(r.name) for _, r in results])
    lines = [f"{'scenario':<{name_w}}  {'fps':>5}  result  latency (alert - onset)"]
    for fps, r in results:
        latency = ", ".join(f"{kind} {'-' if v is None else f'{v:.2f}s'}" for kind, v in r.latency.items()) or "no alert"
        lines.append(f"{r.name:<{name_w}}  {fps:>5g}  {'PASS' if r.passed else 'FAIL':<6}  {latency}")
        lines += [f"{'':<{name_w}}         ! {failure}" for failure in r.failures]
    passed = sum(r.passed for _, r in results)
    lines.append(f"{passed}/{len(results)} passed")
    return lines


def cmd_scenarios(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
    from monitor.scenarios import run_suite

    fps = parse_fps(args.fps)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        results = run_suite((config or Config()).attention, fps, args.seed, names)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    print("\n".join(scenario_table(results)))
    return EXIT_OK if all(r.passed for _, r in results) else EXIT_FAILURE


# ---- tune -------------------------------------------------------------------------------------

def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def tune_table(result: TuneResult) -> list[str]:
    from monitor.attention import PRIORITY

    keys = list(result.rows[0].setting) if result.rows else []
    labelled = any(r.score is not None for r in result.rows)
    head = keys + [f"{k}/h" for k in PRIORITY] + (["recall", "false/h", "median latency s"] if labelled else [])
    table: list[tuple[list[str], str]] = []
    for r in result.rows:
        cells = [str(r.setting[k]) for k in keys]
        if r.error:
            table.append((cells + ["-"] * (len(head) - len(keys)), f"invalid: {r.error}"))
            continue
        cells += [_fmt(r.alerts_per_hour.get(k), "{:.1f}") for k in PRIORITY]
        if labelled:
            score = r.score
            cells += ([_fmt(score.recall), _fmt(score.false_per_hour, "{:.1f}"), _fmt(score.median_latency_s)]
                      if score is not None else ["-"] * 3)
        table.append((cells, "<- recommended" if r is result.recommended else ""))
    widths = [max([len(h)] + [len(cells[i]) for cells, _ in table]) for i, h in enumerate(head)]
    lines = ["  ".join(f"{h:>{w}}" for h, w in zip(head, widths))]
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)) + (f"  {note}" if note else "")
              for cells, note in table]
    if not labelled:
        lines.append("no session has labels.csv: nothing to recommend (label sessions with `browse`)")
    elif result.recommended is None:
        lines.append(f"no setting has at most {result.max_false_per_hour:g} false alerts per hour")
    return lines


def cmd_tune(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE
    from monitor.sessions import SessionError, load_session
    from monitor.tune import MAX_FALSE_PER_HOUR, apply_setting, parse_grid, tune

    limit = MAX_FALSE_PER_HOUR if args.max_false_per_hour is None else args.max_false_per_hour
    if not limit >= 0:
        log.error("--max-false-per-hour must be 0 or more, got %s", args.max_false_per_hour)
        return EXIT_USAGE
    axes = [parse_grid(g) for g in args.grid]
    try:
        sessions = [load_session(p) for p in args.sessions]
    except SessionError as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    base = config or sessions[0].config
    result = tune(sessions, base, axes, limit)
    if args.json:
        print(json.dumps({"sessions": [str(p) for p in args.sessions], **result.to_json()}))
    else:
        print("\n".join(tune_table(result)))
    if args.write_config is not None:
        if result.recommended is None:
            log.error("no recommended setting to write to %s (it needs labelled sessions and a setting "
                      "within --max-false-per-hour)", args.write_config)
            return EXIT_USAGE
        apply_setting(base, result.recommended.setting).save(args.write_config)
        print(f"wrote {args.write_config}", file=sys.stderr)
    return EXIT_OK


# ---- report -----------------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace, config: Config | None) -> int:
    from monitor.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE
    from monitor.report import FORMATS, build_report, write_report
    from monitor.sessions import SessionError, load_session

    out = args.out or Path(f"{args.session.resolve().name}-report.html")
    if out.suffix.lower() not in FORMATS:
        log.error("--out %s must end in %s", out, " or ".join(FORMATS))
        return EXIT_USAGE
    try:
        session = load_session(args.session, config)
    except SessionError as exc:
        log.error("%s", exc)
        return EXIT_INPUT
    write_report(build_report(session), out)
    print(json.dumps({"type": "report", "path": str(out)}))
    return EXIT_OK


# ---- browse -----------------------------------------------------------------------------------

def cmd_browse(args: argparse.Namespace, config: Config | None) -> int:
    """The session is read before Qt starts, so a bad one is an error even without a display."""
    from monitor.cli import EXIT_INPUT, EXIT_OK
    from monitor.session_review import SessionReview
    from monitor.sessions import SessionError, load_session

    review = None
    if args.session is not None:
        try:
            session = load_session(args.session)
            review = SessionReview(session, config or session.config)
        except SessionError as exc:
            log.error("%s", exc)
            return EXIT_INPUT
    from PyQt6.QtWidgets import QApplication

    from monitor.gui.browser import SessionBrowser

    app = QApplication.instance() or QApplication(sys.argv[:1])
    browser = SessionBrowser(config)
    if review is not None:
        browser.show_review(review)
    browser.show()
    app.exec()
    return EXIT_OK
