"""The window's building blocks: the video view, the state banner and the threshold panel.

They only show values and report edits; whether an edit is allowed is decided by the window
with `tuning.apply_knob`, and a refused edit is put back with `ThresholdPanel.show_config`.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont, QImage, QPixmap
from PyQt6.QtWidgets import (QAbstractSpinBox, QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                             QPushButton, QSizePolicy, QSlider, QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from monitor.config import Config
from monitor.gui.present import Banner
from monitor.gui.tuning import Knob, SliderScale, suffix_of

BANNER_POINT_SIZE = 26
VIDEO_MIN_SIZE = (320, 240)
BYTES_PER_RGB_PIXEL = 3


class BannerLabel(QLabel):
    """The state in big letters on its colour, across the top of the video."""

    def __init__(self) -> None:
        super().__init__()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = QFont()
        font.setPointSize(BANNER_POINT_SIZE)
        font.setBold(True)
        self.setFont(font)
        self.banner: Banner | None = None

    def show_banner(self, banner: Banner) -> None:
        if banner == self.banner:
            return
        self.banner = banner
        self.setText(banner.text)
        self.setStyleSheet(f"background-color: {banner.background}; color: {banner.foreground}; padding: 8px;")


class VideoView(QStackedWidget):
    """The annotated video, or, when there is no picture, a plain message with a way out."""

    open_video = pyqtSignal()
    retry_camera = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(*VIDEO_MIN_SIZE)
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.picture.setStyleSheet("background-color: black;")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        open_button = QPushButton("Open a video file…")
        open_button.clicked.connect(self.open_video)
        retry_button = QPushButton("Try the camera again")
        retry_button.clicked.connect(self.retry_camera)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch()
        layout.addWidget(self.message)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(open_button)
        buttons.addWidget(retry_button)
        buttons.addStretch()
        layout.addLayout(buttons)
        layout.addStretch()
        self.addWidget(self.picture)
        self.addWidget(page)
        self.image: QImage | None = None

    def show_frame(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        # QImage does not copy: keep the array alive as long as the image that wraps it
        self._rgb = rgb
        self.image = QImage(rgb.data, width, height, width * BYTES_PER_RGB_PIXEL, QImage.Format.Format_RGB888)
        self.picture.setPixmap(QPixmap.fromImage(self.image).scaled(
            self.picture.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        self.setCurrentWidget(self.picture)

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.setCurrentIndex(1)

    @property
    def showing_message(self) -> bool:
        return self.currentIndex() == 1


class KnobRow:
    """A slider and a spin box kept in step for one key; the spin box carries the unit and the range."""

    def __init__(self, knob: Knob, steps: int, on_edit) -> None:
        self.knob = knob
        self.scale = SliderScale(knob.lo, knob.hi, steps)
        self.label = QLabel(knob.label)
        self.label.setToolTip(knob.help)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, steps)
        self.slider.setToolTip(knob.help)
        if knob.integer:
            self.spin: QAbstractSpinBox = QSpinBox()
        else:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(knob.decimals)
            self.spin.setSingleStep(10 ** -knob.decimals if knob.decimals else 1)
        # the spin box cannot hold a value outside the key's range: invalid numbers cannot be typed
        if knob.integer:
            self.spin.setRange(int(knob.lo), int(knob.hi))
        else:
            self.spin.setRange(knob.lo, knob.hi)
        self.spin.setSuffix(suffix_of(knob.unit))
        self.spin.setToolTip(f"{knob.help} ({knob.lo} to {knob.hi} {knob.unit})".rstrip())
        self.spin.setKeyboardTracking(False)     # apply a typed number when it is complete, not per digit
        self.slider.valueChanged.connect(self._slid)
        self.spin.valueChanged.connect(lambda value: on_edit(self.knob, value))

    def _slid(self, position: int) -> None:
        self.spin.setValue(self.scale.to_value(position))      # its valueChanged applies the edit

    def show(self, value: float) -> None:
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(self.scale.to_position(value))
        for widget in (self.slider, self.spin):
            widget.blockSignals(False)


class ThresholdPanel(QGroupBox):
    """Every tuned key as a slider + spin box, and Save / Load / Reset."""

    edited = pyqtSignal(object, float)     # Knob, new value
    save = pyqtSignal()
    load = pyqtSignal()
    reset = pyqtSignal()

    def __init__(self, knobs: list[Knob], steps: int) -> None:
        super().__init__("Thresholds (applied at once)")
        grid = QGridLayout()
        self.rows: dict[tuple[str, str], KnobRow] = {}
        section = None
        line = 0
        for knob in knobs:
            if knob.section != section:
                section = knob.section
                heading = QLabel(f"<b>{section}</b>")
                grid.addWidget(heading, line, 0, 1, 3)
                line += 1
            row = KnobRow(knob, steps, self.edited.emit)
            grid.addWidget(row.label, line, 0)
            grid.addWidget(row.slider, line, 1)
            grid.addWidget(row.spin, line, 2)
            self.rows[(knob.section, knob.key)] = row
            line += 1
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")
        buttons = QHBoxLayout()
        for text, signal in (("Save", self.save), ("Load…", self.load), ("Reset to defaults", self.reset)):
            button = QPushButton(text)
            button.clicked.connect(signal)
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.error)
        layout.addLayout(buttons)

    def row(self, section: str, key: str) -> KnobRow:
        return self.rows[(section, key)]

    def show_config(self, config: Config) -> None:
        for (section, key), row in self.rows.items():
            row.show(getattr(getattr(config, section), key))
