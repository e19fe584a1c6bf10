"""The session browser's state, without Qt: one session, its replay under the current
thresholds, the alerts that fired in the run and the reviewer's labels being edited.

Kept apart from the window so that seeking, comparing and labelling are tested as plain code,
and the window only draws what this holds.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from monitor.config import Config
from monitor.session_metrics import Span, alert_spans
from monitor.sessions import Label, Replay, Session, SessionError, replay_trace, write_labels


class SessionReview:
    def __init__(self, session: Session, config: Config | None = None) -> None:
        if not session.trace.samples:
            raise SessionError(f"{session.path} has no usable pose rows to browse")
        self.session = session
        self.times = [s.t for s in session.trace.samples]
        # a run that crashed may have left alerts without an end: they lasted to its last row
        self.fired: list[Span] = alert_spans(session.recorded_events, end_t=self.times[-1])
        self.labels: list[Label] = sorted(session.labels or [], key=lambda label: label.start)
        self.unsaved = False
        self.set_config(config or session.config)

    def set_config(self, config: Config) -> None:
        """Replay under new thresholds: what they would fire replaces the previous answer."""
        self.config = config
        self.replay: Replay = replay_trace(self.session.trace.samples, config)
        self.would_fire: list[Span] = alert_spans(self.replay.events)

    def __len__(self) -> int:
        return len(self.times)

    def index_at(self, t: float) -> int:
        """The sample in view at time t: the last one at or before it (the first before the start)."""
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def video_frame(self, index: int) -> int:
        return self.session.trace.rows[index]

    def add_label(self, start: float, end: float, kind: str) -> Label:
        """Marked ends may come in either order; a label of zero length is refused (ValueError)."""
        label = Label(min(start, end), max(start, end), kind)
        bisect.insort(self.labels, label, key=lambda item: item.start)
        self.unsaved = True
        return label

    def label_span(self, span: Span, kind: str) -> Label:
        """Label an alert's interval (from its condition's onset to its end), e.g. as a false alert."""
        return self.add_label(span.onset, span.end, kind)

    def remove_label(self, index: int) -> Label:
        if not 0 <= index < len(self.labels):
            raise IndexError(f"no label {index} (there are {len(self.labels)})")
        self.unsaved = True
        return self.labels.pop(index)

    def save_labels(self) -> Path:
        if not self.session.path.is_dir():
            raise SessionError(f"{self.session.path} is a CSV, not a session folder: labels need a folder")
        path = write_labels(self.session.path, self.labels)
        self.unsaved = False
        return path

