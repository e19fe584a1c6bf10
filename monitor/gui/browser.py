"""The session browser: open a recorded session, scrub through it, compare alerts, label it.

One slider drives the video frame and a cursor on the pose plot, so both always show the same
moment. Two alert lanes under the plot compare what fired during the run with what the
*current* thresholds would fire (a replay on the fly, redone when a configuration is loaded).
Intervals marked as true distraction or drowsiness, or as a false alert, are saved to the
session's `labels.csv`, which is what `tune` scores settings against. It is the only file this
window ever writes, and it is written atomically.

The state and all the logic live in `monitor.session_review.SessionReview`; this module only
draws it and forwards clicks.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QCloseEvent, QColor, QImage, QKeySequence, QPixmap
from PyQt6.QtWidgets import (QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QListWidget,
                             QListWidgetItem, QMainWindow, QMessageBox, QPushButton, QSlider, QVBoxLayout,
                             QWidget)

from monitor.config import Config, ConfigError
from monitor.report import KIND_COLOURS
from monitor.session_metrics import Span
from monitor.session_review import SessionReview
from monitor.sessions import LABEL_KINDS, SessionError, load_session

log = logging.getLogger(__name__)

WINDOW_TITLE = "Session browser"
WINDOW_SIZE_PX = (1200, 820)
VIDEO_SIZE_PX = (480, 360)
LIST_WIDTH_PX = 330
PLOT_HEIGHT_PX = 330
LANE_ALPHA = 170
THRESHOLD_PEN = pg.mkPen("#555555", style=Qt.PenStyle.DashLine)
CURSOR_PEN = pg.mkPen("#d50000", width=2)
CURVE_PENS = {"Δyaw": pg.mkPen("#1565c0", width=1.5), "Δpitch": pg.mkPen("#2e7d32", width=1.5)}
LANES = {"run": 1.0, "now": 0.0}            # lane of each alert source on the alerts plot (bottom edge)
LANE_HEIGHT = 0.8
LABEL_COLOURS = {"distraction": "#6a1b9a", "drowsiness": "#ad1457", "false_alert": "#00838f"}
LABEL_ALPHA = 50


def _colour(hex_colour: str, alpha: int) -> QColor:
    colour = QColor(hex_colour)
    colour.setAlpha(alpha)
    return colour


def span_text(span: Span) -> str:
    return f"{span.start:8.2f} s  {span.kind.replace('_', ' ')}  ({span.end - span.start:.1f} s)"


class VideoFrames:
    """Frames of video.avi by number: reads on when asked for the next frame, seeks otherwise."""

    def __init__(self, path: Path | None) -> None:
        self._capture = cv2.VideoCapture(str(path)) if path is not None else None
        if self._capture is not None and not self._capture.isOpened():
            log.warning("%s cannot be read: no frames to show", path)
            self._capture = None
        self._next = 0

    def frame(self, number: int) -> np.ndarray | None:
        if self._capture is None:
            return None
        if number != self._next:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, number)
        ok, image = self._capture.read()
        self._next = number + 1 if ok else -1
        return image if ok else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class SessionBrowser(QMainWindow):
    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config_override = config    # thresholds asked for; None: each session's own
        self.review: SessionReview | None = None
        self.video = VideoFrames(None)
        self.mark_start: float | None = None
        self.selected_span: Span | None = None     # the alert last selected in either list
        self.setWindowTitle(WINDOW_TITLE)
        self.resize(*WINDOW_SIZE_PX)
        self._build_actions()
        self._build_widgets()
        self._set_enabled(False)

    # ---- building -----------------------------------------------------------------------------

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&Session")
        for text, shortcut, slot in (("&Open session…", QKeySequence.StandardKey.Open, self._ask_session),
                                     ("Load &thresholds…", None, self._ask_config),
                                     ("&Save labels", QKeySequence.StandardKey.Save, self.save_labels)):
            action = QAction(text, self)
            if shortcut is not None:
                action.setShortcut(shortcut)
            action.triggered.connect(slot)
            menu.addAction(action)

    def _build_widgets(self) -> None:
        central = QWidget()
        root = QVBoxLayout(central)
        top = QHBoxLayout()
        self.video_label = QLabel("no video")
        self.video_label.setFixedSize(*VIDEO_SIZE_PX)
        self.video_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.video_label.setStyleSheet("background: #222; color: #ccc")
        top.addWidget(self.video_label)

        lists = QGridLayout()
        self.fired_list, self.would_list, self.label_list = QListWidget(), QListWidget(), QListWidget()
        for column, (title, widget) in enumerate((("Fired during the run", self.fired_list),
                                                  ("Would fire now", self.would_list))):
            lists.addWidget(QLabel(title), 0, column)
            lists.addWidget(widget, 1, column)
            widget.setMinimumWidth(LIST_WIDTH_PX // 2)
            widget.itemDoubleClicked.connect(self._seek_to_item)
            widget.currentItemChanged.connect(self._select_span)
        lists.addWidget(QLabel("Labels (labels.csv)"), 2, 0, 1, 2)
        lists.addWidget(self.label_list, 3, 0, 1, 2)
        self.label_list.itemDoubleClicked.connect(self._seek_to_item)
        controls = QHBoxLayout()
        self.kind_box = QComboBox()
        self.kind_box.addItems(LABEL_KINDS)
        self.mark_button = QPushButton("Mark start")
        self.add_button = QPushButton("Add label to here")
        self.alert_button = QPushButton("Label selected alert")
        self.delete_button = QPushButton("Delete label")
        self.save_button = QPushButton("Save labels")
        for widget, slot in ((self.mark_button, self.mark_here), (self.add_button, self.add_label_here),
                             (self.alert_button, self.label_selected_alert),
                             (self.delete_button, self.delete_selected_label), (self.save_button, self.save_labels)):
            widget.clicked.connect(slot)
        for widget in (self.kind_box, self.mark_button, self.add_button, self.alert_button,
                       self.delete_button, self.save_button):
            controls.addWidget(widget)
        lists.addLayout(controls, 4, 0, 1, 2)
        top.addLayout(lists, stretch=1)
        root.addLayout(top)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.plots.setMinimumHeight(PLOT_HEIGHT_PX)
        self.yaw_plot = self.plots.addPlot(row=0, col=0)
        self.pitch_plot = self.plots.addPlot(row=1, col=0)
        self.alert_plot = self.plots.addPlot(row=2, col=0)
        self.curves, self.cursors, self.thresholds = {}, [], {}
        for plot, name in ((self.yaw_plot, "Δyaw"), (self.pitch_plot, "Δpitch")):
            plot.setLabel("left", name, units="°")
            plot.showGrid(x=True, y=True)
            self.curves[name] = plot.plot(pen=CURVE_PENS[name], connect="finite")
            self.thresholds[name] = [pg.InfiniteLine(angle=0, pen=THRESHOLD_PEN) for _ in range(2)]
            for line in self.thresholds[name]:
                plot.addItem(line)
        self.alert_plot.setLabel("left", "alerts")
        self.alert_plot.getAxis("left").setTicks([[(LANES["run"] + LANE_HEIGHT / 2, "run"),
                                                   (LANES["now"] + LANE_HEIGHT / 2, "now")]])
        self.alert_plot.setYRange(0, len(LANES))
        self.alert_plot.setLabel("bottom", "session time", units="s")
        self.lane_items: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []   # alert bars and label regions
        for plot in (self.yaw_plot, self.pitch_plot, self.alert_plot):
            if plot is not self.yaw_plot:
                plot.setXLink(self.yaw_plot)
            cursor = pg.InfiniteLine(angle=90, pen=CURSOR_PEN)
            plot.addItem(cursor)
            self.cursors.append(cursor)
        root.addWidget(self.plots, stretch=1)

        bottom = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self.show_index)
        self.position_label = QLabel("")
        bottom.addWidget(self.slider, stretch=1)
        bottom.addWidget(self.position_label)
        root.addLayout(bottom)
        self.setCentralWidget(central)

    def _set_enabled(self, on: bool) -> None:
        for widget in (self.slider, self.mark_button, self.add_button, self.alert_button,
                       self.delete_button, self.save_button, self.kind_box):
            widget.setEnabled(on)

    # ---- opening ------------------------------------------------------------------------------

    def open_session(self, path: Path) -> None:
        """Raises SessionError when the folder has no usable poses; other gaps show as warnings."""
        session = load_session(Path(path))
        self.show_review(SessionReview(session, self.config_override or session.config))

    def show_review(self, review: SessionReview) -> None:
        session = review.session
        self.video.close()
        self.review = review
        self.video = VideoFrames(session.video)
        self.mark_start = None
        self.selected_span = None
        self.slider.setRange(0, len(review) - 1)
        self._draw_config()
        self._fill_fired()
        self._fill_labels()
        self._set_enabled(True)
        self.slider.setValue(0)
        self.show_index(0)
        self._update_title()
        if session.warnings:
            self.statusBar().showMessage("; ".join(session.warnings))

    def load_config(self, path: Path) -> None:
        """New thresholds for 'would fire now' (ConfigError if the file is bad)."""
        self.config_override = Config.load(path)
        if self.review is not None:
            self.review.set_config(self.config_override)
            self._draw_config()
        self.statusBar().showMessage(f"thresholds from {path}")

    def _ask_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a session folder")
        if folder and self._may_discard():
            try:
                self.open_session(Path(folder))
            except SessionError as exc:
                QMessageBox.warning(self, WINDOW_TITLE, str(exc))

    def _ask_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load thresholds", "", "Configuration (*.toml)")
        if path:
            try:
                self.load_config(Path(path))
            except ConfigError as exc:
                QMessageBox.warning(self, WINDOW_TITLE, str(exc))

    # ---- drawing ------------------------------------------------------------------------------

    def _draw_config(self) -> None:
        """Curves, thresholds and the 'would fire' lane under the review's current configuration."""
        review = self.review
        s = review.config.attention
        rows = review.replay.rows
        t = np.array(review.times)
        self.curves["Δyaw"].setData(t, np.array([math.nan if r.dyaw is None else r.dyaw for r in rows]))
        self.curves["Δpitch"].setData(t, np.array([math.nan if r.dpitch is None else r.dpitch for r in rows]))
        for line, level in zip(self.thresholds["Δyaw"], (-s.yaw_away_deg, s.yaw_away_deg)):
            line.setValue(level)
        for line, level in zip(self.thresholds["Δpitch"], (-s.pitch_down_deg, s.pitch_up_deg)):
            line.setValue(level)
        self.would_list.clear()
        for span in review.would_fire:
            self._add_span_item(self.would_list, span)
        self._draw_lanes()

    def _draw_lanes(self) -> None:
        for plot, item in self.lane_items:
            plot.removeItem(item)
        self.lane_items = []
        review = self.review
        for lane, spans in (("run", review.fired), ("now", review.would_fire)):
            if spans:
                bars = pg.BarGraphItem(x0=[s.start for s in spans], width=[s.end - s.start for s in spans],
                                       y0=LANES[lane], height=LANE_HEIGHT,
                                       brushes=[_colour(KIND_COLOURS[s.kind], LANE_ALPHA) for s in spans],
                                       pens=[pg.mkPen(None)] * len(spans))
                self.alert_plot.addItem(bars)
                self.lane_items.append((self.alert_plot, bars))
        for label in review.labels:
            for plot in (self.yaw_plot, self.pitch_plot):
                region = pg.LinearRegionItem((label.start, label.end), movable=False,
                                             brush=_colour(LABEL_COLOURS[label.kind], LABEL_ALPHA))
                region.setZValue(-10)
                plot.addItem(region)
                self.lane_items.append((plot, region))

    def _add_span_item(self, widget: QListWidget, span: Span) -> None:
        item = QListWidgetItem(span_text(span))
        item.setData(Qt.ItemDataRole.UserRole, span)
        item.setForeground(QColor(KIND_COLOURS[span.kind]))
        widget.addItem(item)

    def _fill_fired(self) -> None:
        self.fired_list.clear()
        for span in self.review.fired:
            self._add_span_item(self.fired_list, span)
        if not self.review.session.recorded_events and self.review.session.path.is_dir():
            self.fired_list.addItem("(no events.jsonl, or no alert fired)")

    def _fill_labels(self) -> None:
        self.label_list.clear()
        for label in self.review.labels:
            item = QListWidgetItem(f"{label.start:8.2f} – {label.end:8.2f} s  {label.kind}")
            item.setData(Qt.ItemDataRole.UserRole, label)
            self.label_list.addItem(item)
        self._draw_lanes()
        self._update_title()

    def _update_title(self) -> None:
        name = self.review.session.name if self.review else ""
        dirty = "*" if self.review is not None and self.review.unsaved else ""
        self.setWindowTitle(f"{WINDOW_TITLE} – {name}{dirty}" if name else WINDOW_TITLE)

    def show_index(self, index: int) -> None:
        """Show sample `index`: its video frame, the plot cursor and the state read-out in step."""
        if self.review is None:
            return
        review = self.review
        t = review.times[index]
        for cursor in self.cursors:
            cursor.setValue(t)
        image = self.video.frame(review.video_frame(index))
        if image is None:
            self.video_label.setPixmap(QPixmap())
            self.video_label.setText("no video frame")
        else:
            rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            qimage = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
            self.video_label.setPixmap(QPixmap.fromImage(qimage).scaled(
                self.video_label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation))
        row = review.replay.rows[index]
        marked = "" if self.mark_start is None else f"   marked from {self.mark_start:.2f} s"
        self.position_label.setText(f"t = {t:.2f} s   face: {'yes' if row.face else 'no'}   "
                                    f"now: {row.state.value.replace('_', ' ')}{marked}")

    def current_time(self) -> float:
        return self.review.times[self.slider.value()]

    def seek(self, t: float) -> None:
        self.slider.setValue(self.review.index_at(t))

    def _seek_to_item(self, item: QListWidgetItem) -> None:
        data = item.data(Qt.ItemDataRole.UserRole)
        if data is not None:
            self.seek(data.start)

    def _select_span(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is not None:
            self.selected_span = item.data(Qt.ItemDataRole.UserRole)

    # ---- labelling ----------------------------------------------------------------------------

    def mark_here(self) -> None:
        self.mark_start = self.current_time()
        self.show_index(self.slider.value())

    def add_label_here(self) -> None:
        """Label from the marked start to the current moment, of the kind chosen in the box."""
        if self.mark_start is None:
            self.statusBar().showMessage("mark the start of the interval first")
            return
        try:
            self.review.add_label(self.mark_start, self.current_time(), self.kind_box.currentText())
        except ValueError as exc:
            self.statusBar().showMessage(str(exc))
            return
        self.mark_start = None
        self._fill_labels()

    def label_selected_alert(self) -> None:
        """Label the interval of the alert selected in either list with the chosen kind."""
        span = self.selected_span
        if span is None:
            self.statusBar().showMessage("select an alert in one of the lists first")
            return
        self.review.label_span(span, self.kind_box.currentText())
        self._fill_labels()

    def delete_selected_label(self) -> None:
        row = self.label_list.currentRow()
        if row >= 0:
            self.review.remove_label(row)
            self._fill_labels()

    def save_labels(self) -> None:
        if self.review is None:
            return
        try:
            path = self.review.save_labels()
        except (SessionError, OSError) as exc:
            QMessageBox.warning(self, WINDOW_TITLE, f"labels not saved: {exc}")
            return
        self.statusBar().showMessage(f"saved {path}")
        self._update_title()

    # ---- closing ------------------------------------------------------------------------------

    def _may_discard(self) -> bool:
        """Unsaved labels are not lost silently: ask before they are."""
        if self.review is None or not self.review.unsaved:
            return True
        answer = QMessageBox.question(self, WINDOW_TITLE, "Discard the unsaved labels?",
                                      QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._may_discard():
            self.video.close()
            event.accept()
        else:
            event.ignore()
