"""A one-page session report a fleet tester can send: HTML (figure embedded) or a PNG.

The numbers come from replaying the session with the configuration it is reported under (its
own, or the one given), through the same `replay_trace` and `session_metrics` functions the
other session tools use. A report therefore always agrees with `replay`. The HTML also carries
them as JSON (`<script id="report-data">`), so a script can read a report back.

Drawn with matplotlib's object API (no pyplot), which needs no display and keeps no global state.
Nothing is written into the session folder.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.attention import State
from monitor.config import Config
from monitor.session_metrics import SessionStats, Span, alert_spans, session_stats
from monitor.sessions import Replay, Session, replay_trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = (".html", ".png")
KIND_COLOURS = {"nodding_off": "#c62828", "looking_away": "#ef6c00",
                "attention_sharing": "#f9a825", "no_face": "#757575"}
CALIBRATION_COLOUR = "#90caf9"
SPAN_ALPHA = 0.25
THRESHOLD_STYLE = {"color": "#555555", "linestyle": "--", "linewidth": 1}
TIMELINE_SIZE_IN = (11.0, 5.0)
PNG_SIZE_IN = (11.0, 9.0)
DPI = 100
# Sections of the configuration that decide the alerts, shown in the report.
REPORTED_SECTIONS = ("attention", "smoother")


@dataclass
class ReportData:
    name: str
    stats: SessionStats
    replay: Replay
    spans: list[Span]
    config: Config
    warnings: list[str]

    def numbers(self) -> dict[str, Any]:
        """What the report states, as plain data (the HTML's JSON block)."""
        return {"session": self.name, **self.stats.to_json(),
                "alert_events": [e.to_json() for e in self.replay.events],
                "config": {name: asdict(getattr(self.config, name)) for name in REPORTED_SECTIONS},
                "warnings": self.warnings}


def build_report(session: Session) -> ReportData:
    result = replay_trace(session.trace.samples, session.config)
    stats = session_stats(result.rows, result.events, session.config.attention)
    return ReportData(session.name, stats, result, alert_spans(result.events), session.config,
                      list(session.warnings))


def stat_lines(data: ReportData) -> list[tuple[str, str]]:
    """(label, value) rows of the summary table, in reading order."""
    s = data.stats
    attentive = "n/a (never calibrated)" if s.attentive_fraction is None else f"{100 * s.attentive_fraction:.1f} %"
    rows = [("Duration", f"{s.duration_s:.1f} s (monitored after calibration: {s.monitored_s:.1f} s)"),
            ("Time attentive", attentive),
            ("Glances away from the road", str(s.glance_count)),
            ("Longest glance away", f"{s.longest_glance_s:.1f} s"),
            ("Attention-sharing episodes", str(s.sharing_episodes)),
            ("Head drops (nods)", str(s.head_drops)),
            ("Time without a face", f"{s.no_face_s:.1f} s")]
    rows += [(f"Alerts: {kind.replace('_', ' ')}", str(n)) for kind, n in s.alerts.items()]
    return rows


def draw_timeline(fig: Figure, data: ReportData, rect: tuple[float, float, float, float] | None = None) -> None:
    """Deviation from neutral over time, the thresholds as dashed lines and each alert's span
    (raised to ended) shaded in its kind's colour, on two stacked axes of `fig`."""
    from matplotlib.patches import Patch

    s = data.config.attention
    rows = data.replay.rows
    t = [r.t for r in rows]
    grid = fig.add_gridspec(2, 1, hspace=0.1, **({} if rect is None else
                                                 dict(left=rect[0], bottom=rect[1], right=rect[2], top=rect[3])))
    yaw_ax = fig.add_subplot(grid[0])
    pitch_ax = fig.add_subplot(grid[1], sharex=yaw_ax)
    for ax, values, label, limits in (
            (yaw_ax, [math.nan if r.dyaw is None else r.dyaw for r in rows], "Δyaw (°)",
             (-s.yaw_away_deg, s.yaw_away_deg)),
            (pitch_ax, [math.nan if r.dpitch is None else r.dpitch for r in rows], "Δpitch (°)",
             (-s.pitch_down_deg, s.pitch_up_deg))):
        ax.plot(t, values, linewidth=1, color="#1565c0")
        for level in limits:
            ax.axhline(level, **THRESHOLD_STYLE)
        for span in data.spans:
            ax.axvspan(span.start, span.end, color=KIND_COLOURS[span.kind], alpha=SPAN_ALPHA, linewidth=0)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    yaw_ax.tick_params(labelbottom=False)
    pitch_ax.set_xlabel("session time (s)")
    handles = [Patch(color=c, alpha=SPAN_ALPHA, label=k.replace("_", " ")) for k, c in KIND_COLOURS.items()]
    calibrated = next((r.t for r in rows if r.state is not State.CALIBRATING), rows[-1].t if rows else 0.0)
    if rows and calibrated > rows[0].t:
        for ax in (yaw_ax, pitch_ax):
            ax.axvspan(rows[0].t, calibrated, color=CALIBRATION_COLOUR, alpha=SPAN_ALPHA, linewidth=0)
        handles.append(Patch(color=CALIBRATION_COLOUR, alpha=SPAN_ALPHA, label="calibrating"))
    yaw_ax.legend(handles=handles, loc="upper right", fontsize="small", ncol=len(handles))
    yaw_ax.set_title(f"Session {data.name}: head pose relative to neutral, thresholds and alerts")


def write_report(data: ReportData, out: Path) -> Path:
    from matplotlib.figure import Figure     # here only: the browser imports this module for its colours

    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"report file {out} must end in {' or '.join(FORMATS)}")
    if out.suffix.lower() == ".png":
        fig = Figure(figsize=PNG_SIZE_IN, dpi=DPI)
        draw_timeline(fig, data, rect=(0.07, 0.45, 0.97, 0.95))
        fig.text(0.07, 0.40, _text_panel(data), va="top", family="monospace", fontsize="small")
        fig.savefig(out, format="png")
        return out
    fig = Figure(figsize=TIMELINE_SIZE_IN, dpi=DPI)
    draw_timeline(fig, data)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    out.write_text(_html(data, base64.b64encode(buf.getvalue()).decode("ascii")), encoding="utf-8")
    return out


def _config_rows(config: Config) -> list[tuple[str, Any]]:
    return [(f"{name}.{key}", value) for name in REPORTED_SECTIONS
            for key, value in asdict(getattr(config, name)).items()]


def _text_panel(data: ReportData) -> str:
    left = [f"{label:<28} {value}" for label, value in stat_lines(data)]
    right = [f"{key:<34} {value}" for key, value in _config_rows(data.config)]
    width = max(map(len, left)) + 4
    lines = [f"{a:<{width}}{b}" for a, b in zip(left + [""] * len(right), right + [""] * len(left))
             if a or b]
    return "\n".join(lines + [f"warning: {w}" for w in data.warnings])


def _html(data: ReportData, png_base64: str) -> str:
    esc = html.escape
    stats = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in stat_lines(data))
    config = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in _config_rows(data.config))
    warnings = "".join(f"<li>{esc(w)}</li>" for w in data.warnings)
    spans = "".join(f"<tr><td>{esc(s.kind)}</td><td>{s.onset:.2f}</td><td>{s.start:.2f}</td><td>{s.end:.2f}</td></tr>"
                    for s in data.spans)
    numbers = json.dumps(data.numbers()).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Driver attention report: {esc(data.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table{{border-collapse:collapse}}
th,td{{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}} .cols{{display:flex;gap:40px}}</style>
</head><body>
<h1>Driver attention report: {esc(data.name)}</h1>
<img alt="head pose timeline" style="width:100%" src="data:image/png;base64,{png_base64}">
<div class="cols"><div><h2>Summary</h2><table>{stats}</table>
<h2>Alerts</h2><table><tr><th>kind</th><th>onset (s)</th><th>raised (s)</th><th>ended (s)</th></tr>{spans}</table></div>
<div><h2>Configuration used</h2><table>{config}</table></div></div>
{f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else ""}
<script type="application/json" id="report-data">{numbers}</script>
</body></html>
"""
