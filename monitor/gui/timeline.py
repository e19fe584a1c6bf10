"""The live yaw/pitch timeline: deviation from neutral over the last seconds, with the road zone
shaded as a band and each alert's span shaded across both plots in its banner colour."""

from __future__ import annotations

import pyqtgraph as pg
from PyQt6.QtGui import QColor

from monitor.attention import State
from monitor.config import AttentionSettings
from monitor.gui.history import TimelineView
from monitor.gui.present import banner

YAW_PEN = "#1565c0"
PITCH_PEN = "#2e7d32"
ROAD_ZONE_BRUSH = (46, 125, 50, 40)      # translucent green: inside it the driver is on the road
SPAN_ALPHA = 90
CURVE_WIDTH = 2
HEIGHT_PX = 220
Y_RANGE_OF_ZONE = 1.5     # the plots show this much more than the widest threshold


def span_colour(kind: str) -> QColor:
    colour = QColor(banner(State(kind), 1.0).background)
    colour.setAlpha(SPAN_ALPHA)
    return colour


class TimelinePlot(pg.GraphicsLayoutWidget):
    def __init__(self, window_s: float) -> None:
        super().__init__()
        self.setBackground("w")
        self.setMinimumHeight(HEIGHT_PX)
        self.window_s = window_s
        self.yaw_plot = self.addPlot(row=0, col=0)
        self.pitch_plot = self.addPlot(row=1, col=0)
        self.pitch_plot.setXLink(self.yaw_plot)
        self.curves = {}
        self.bands = {}
        for plot, name, pen in ((self.yaw_plot, "Δyaw", YAW_PEN), (self.pitch_plot, "Δpitch", PITCH_PEN)):
            plot.setLabel("left", name, units="°")
            plot.showGrid(x=True, y=True)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            band = pg.LinearRegionItem(orientation="horizontal", movable=False, brush=ROAD_ZONE_BRUSH,
                                       pen=pg.mkPen(pen, style=pg.QtCore.Qt.PenStyle.DashLine))
            band.setZValue(-10)
            plot.addItem(band)
            self.bands[name] = band
            self.curves[name] = plot.plot(pen=pg.mkPen(pen, width=CURVE_WIDTH), connect="finite")
        self.pitch_plot.setLabel("bottom", "time", units="s")
        self.yaw_plot.setXRange(-window_s, 0, padding=0)
        self._spans: list[tuple[pg.LinearRegionItem, pg.LinearRegionItem]] = []

    def set_thresholds(self, s: AttentionSettings) -> None:
        """The road zone as the attention engine sees it (without hysteresis): leaving it is off the road."""
        self.bands["Δyaw"].setRegion((-s.yaw_away_deg, s.yaw_away_deg))
        self.bands["Δpitch"].setRegion((-s.pitch_down_deg, s.pitch_up_deg))
        margin = max(s.yaw_away_deg, s.pitch_up_deg, s.pitch_down_deg) * Y_RANGE_OF_ZONE
        self.yaw_plot.setYRange(-margin, margin)
        self.pitch_plot.setYRange(-margin, margin)

    def show_view(self, view: TimelineView) -> None:
        self.curves["Δyaw"].setData(view.t, view.yaw)
        self.curves["Δpitch"].setData(view.t, view.pitch)
        while len(self._spans) < len(view.spans):
            pair = tuple(pg.LinearRegionItem(movable=False, pen=pg.mkPen(None)) for _ in range(2))
            for plot, item in zip((self.yaw_plot, self.pitch_plot), pair):
                item.setZValue(-20)
                plot.addItem(item)
            self._spans.append(pair)
        for index, pair in enumerate(self._spans):
            visible = index < len(view.spans)
            for item in pair:
                item.setVisible(visible)
                if visible:
                    kind, start, end = view.spans[index]
                    item.setRegion((start, end))
                    item.setBrush(span_colour(kind))

    @property
    def span_count(self) -> int:
        return sum(pair[0].isVisible() for pair in self._spans)
