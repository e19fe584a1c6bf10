"""The one configuration object: every threshold, filter parameter and tunable number.

Each section is a frozen-free dataclass whose fields carry their allowed range and unit in
metadata, so that loading a TOML file can reject a bad value with a message naming the key
and what is allowed, and so that the GUI can build its sliders from the same table.
Units are part of the key names (`_s`, `_deg`, `_hz`, `_px`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_VERSION = 1


def setting(default: float | int | bool | str, lo: float | None = None, hi: float | None = None,
            help: str = "", choices: tuple[str, ...] = ()) -> Any:
    """A config field with its allowed range (inclusive) and a one-line meaning."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "help": help, "choices": choices})


@dataclass
class CaptureSettings:
    camera_width_px: int = setting(640, 160, 3840, "width asked of a camera")
    camera_height_px: int = setting(480, 120, 2160, "height asked of a camera")
    camera_fps: float = setting(30.0, 1.0, 240.0, "frame rate asked of a camera")
    camera_retry_s: float = setting(5.0, 0.0, 120.0,
                                    "how long a missing or unplugged camera is retried before giving up")
    camera_retry_every_s: float = setting(0.2, 0.01, 0.5,
                                          "pause between attempts to reach a missing camera (short, so "
                                          "stopping capture never waits long)")
    max_bad_frames_in_row: int = setting(50, 1, 100000,
                                         "unreadable frames in a row after which a video counts as ended")
    image_folder_fps: float = setting(10.0, 0.1, 240.0,
                                      "pace of an image folder in real-time mode (it has no frame rate)")


@dataclass
class CascadeSettings:
    min_face_px: int = setting(80, 20, 1000,
                               "smallest face searched for; a driver's face is large, so the pyramid stops early")
    scale_factor: float = setting(0.709, 0.5, 0.95, "ratio between image-pyramid levels")
    pnet_threshold: float = setting(0.6, 0.0, 1.0, "P-Net face probability to keep a proposal")
    rnet_threshold: float = setting(0.7, 0.0, 1.0, "R-Net face probability to keep a candidate")
    rnet_merge_iou: float = setting(0.5, 0.1, 1.0,
                                    "R-Net boxes overlapping more than this after regression are merged "
                                    "before FPNet (1 = off, as in MTCNN)")
    fpnet_threshold: float = setting(0.7, 0.0, 1.0, "FPNet face probability to report a face")
    redetect_every_n_frames: int = setting(15, 1, 10000,
                                           "tracking mode runs full detection at least this often")
    threads: int = setting(1, 1, 64, "torch CPU threads for inference")
    mosaic_max_px: int = setting(30000, 0, 10**7,
                                 "P-Net runs once on pyramid levels packed into mosaics of at most this many "
                                 "pixels (fewer calls; past the CPU cache a call gets slower per pixel; "
                                 "0 = one call per level)")


@dataclass
class DriverSettings:
    track_iou: float = setting(0.3, 0.0, 1.0,
                               "a face overlapping the last driver box at least this much is still the driver")
    centre_weight: float = setting(0.5, 0.0, 1.0,
                                   "when choosing a new driver: 0 = largest face wins, 1 = most central wins")


@dataclass
class SmootherSettings:
    min_cutoff_hz: float = setting(1.0, 0.01, 30.0, "One Euro filter cut-off at rest (lower = smoother)")
    beta: float = setting(0.02, 0.0, 10.0, "One Euro speed coefficient (higher = less lag when moving)")
    d_cutoff_hz: float = setting(1.0, 0.01, 30.0, "cut-off of the speed estimate")


@dataclass
class AttentionSettings:
    calibration_s: float = setting(10.0, 0.0, 120.0,
                                   "seconds of face used to learn the neutral pose (0 = use the neutral_* keys)")
    neutral_yaw_deg: float = setting(0.0, -90.0, 90.0, "neutral yaw when calibration_s is 0")
    neutral_pitch_deg: float = setting(0.0, -90.0, 90.0, "neutral pitch when calibration_s is 0")
    yaw_away_deg: float = setting(30.0, 1.0, 90.0, "|yaw - neutral| beyond this is off the road")
    pitch_down_deg: float = setting(20.0, 1.0, 90.0, "pitch this far below neutral is off the road")
    pitch_up_deg: float = setting(25.0, 1.0, 90.0, "pitch this far above neutral is off the road")
    hysteresis_deg: float = setting(3.0, 0.0, 20.0, "the head must come this far back inside to be on the road")
    looking_away_s: float = setting(3.0, 0.1, 60.0, "continuous time off the road before a looking-away alert")
    sharing_window_s: float = setting(30.0, 1.0, 600.0, "sliding window of the attention-sharing rule")
    sharing_total_s: float = setting(10.0, 0.1, 600.0, "time off the road within the window that alerts")
    sharing_reset_s: float = setting(2.0, 0.1, 60.0, "continuous time on the road that resets the window")
    nod_drop_deg: float = setting(15.0, 1.0, 90.0, "a head drop: pitch falls this far below neutral ...")
    nod_drop_within_s: float = setting(1.0, 0.1, 10.0, "... within this time")
    nod_hold_s: float = setting(1.0, 0.1, 30.0, "a drop held this long is an urgent nodding-off alert")
    nod_count: int = setting(2, 1, 100, "this many drops ...")
    nod_window_s: float = setting(60.0, 1.0, 3600.0, "... within this time are a nodding-off alert")
    nod_alert_s: float = setting(3.0, 0.1, 60.0, "how long a nodding-off alert from repeated drops lasts")
    no_face_s: float = setting(3.0, 0.1, 60.0, "time without a face before 'driver not visible'")

    def check(self) -> None:
        """Combinations under which a rule could never fire or never end."""
        gated = {"yaw_away_deg": self.yaw_away_deg, "pitch_down_deg": self.pitch_down_deg,
                 "pitch_up_deg": self.pitch_up_deg, "nod_drop_deg": self.nod_drop_deg}
        smallest = min(gated, key=gated.__getitem__)
        if self.hysteresis_deg >= gated[smallest]:
            raise ConfigError(f"attention.hysteresis_deg = {self.hysteresis_deg} must be smaller than "
                              f"attention.{smallest} = {gated[smallest]}, or the head could never come back")
        if self.sharing_total_s > self.sharing_window_s:
            raise ConfigError(f"attention.sharing_total_s = {self.sharing_total_s} must not exceed "
                              f"attention.sharing_window_s = {self.sharing_window_s}")


@dataclass
class AlertSettings:
    enabled: bool = setting(True, help="play audio alerts")
    volume: float = setting(0.8, 0.0, 1.0, "audio volume")
    repeat_s: float = setting(1.5, 0.2, 30.0, "a lasting alert's tone repeats this often")
    escalate_after_s: float = setting(6.0, 0.0, 120.0, "a lasting alert turns more urgent after this long")
    escalated_repeat_factor: float = setting(2.0, 1.0, 10.0,
                                             "an escalated alert repeats this many times as often")
    calm_gain: float = setting(0.6, 0.05, 1.0,
                               "a not-yet-escalated tone plays at this fraction of the volume, "
                               "so that escalating is also louder")
    sample_rate_hz: int = setting(44100, 8000, 192000, "sample rate of the generated tones")


@dataclass
class RecorderSettings:
    video_fourcc: str = setting("MJPG", help="four-character code of the recorded video: a crash loses the "
                                "last 32 KiB of an MJPG file (about one 640x480 frame), the last 256 KiB of "
                                "XVID/FMP4 (seconds; their files are ~10x smaller)",
                                choices=("MJPG", "XVID", "FMP4"))
    flush_every_s: float = setting(0.5, 0.05, 10.0,
                                   "pose rows are flushed at least this often in stream time (what a crash may lose)")


@dataclass
class TrainingSettings:
    """FPNet distillation (`run_monitor.py train`); used only by `monitor.training`."""
    mine_min_face_px: int = setting(40, 12, 1000, "smallest face P-Net proposes while mining training crops")
    mine_rnet_threshold: float = setting(0.3, 0.0, 1.0,
                                         "R-Net probability a mined crop needs: below the run-time 0.7, so "
                                         "FPNet also learns the borderline boxes R-Net lets through")
    validation_fraction: float = setting(0.1, 0.0, 0.5, "share of source images held out for validation")
    positive_iou: float = setting(0.65, 0.0, 1.0, "IoU with the reference face box for a positive")
    part_iou: float = setting(0.4, 0.0, 1.0, "IoU for a part face (box regression only)")
    negative_iou: float = setting(0.3, 0.0, 1.0, "IoU below which a crop is a negative")
    positives_per_face: int = setting(2, 0, 100, "R-Net positives kept per face (plus the reference box)")
    parts_per_face: int = setting(1, 0, 100, "part faces kept per face")
    outside_negatives_per_face: int = setting(2, 0, 100, "negatives away from the face, per face image")
    inside_negatives_per_face: int = setting(1, 0, 100, "negatives inside the face (eye, mouth), per face")
    inside_negative_size: float = setting(0.45, 0.1, 0.9, "side of an inside negative, in face-box sides")
    crops_per_background: int = setting(4, 0, 100, "negatives mined from each image without faces")
    context_scale: float = setting(1.5, 1.2, 3.0,
                                   "a stored crop covers this many box sides, so rotation and jitter "
                                   "never show the padding")
    teacher_margin: float = setting(0.6, 0.0, 2.0, "FSA-Net crop margin per side, in box sizes (its ad)")
    max_disagreement_deg: float = setting(15.0, 1.0, 180.0,
                                          "faces whose two teachers differ more than this get no pose loss")
    epochs: int = setting(30, 1, 1000, "training epochs")
    batch_size: int = setting(64, 2, 4096, "mini-batch size")
    learning_rate: float = setting(0.001, 1e-6, 1.0, "Adam learning rate at epoch 0")
    lr_decay: float = setting(0.83, 0.1, 1.0, "learning rate factor per epoch")
    dropout: float = setting(0.25, 0.0, 0.9, "dropout before the heads while training")
    seed: int = setting(0, 0, 2**31 - 1, "seed of every random choice, for reproducible runs")
    weight_face: float = setting(1.0, 0.0, 100.0, "loss weight of face/no-face")
    weight_box: float = setting(0.5, 0.0, 100.0, "loss weight of box regression (O-Net's)")
    weight_landmark: float = setting(1.0, 0.0, 100.0, "loss weight of the landmarks")
    weight_rotation: float = setting(1.0, 0.0, 100.0, "loss weight of the pose head")
    rotation_loss: str = setting("l2", help="pose loss: thesis L2 on the 6D vector or geodesic angle",
                                 choices=("l2", "geodesic"))
    ohem: str = setting("middle", help="online hard example mining of the box, landmark and pose terms: "
                        "thesis middle share, MTCNN hardest share, or none", choices=("middle", "hardest", "none"))
    ohem_keep: float = setting(0.6, 0.1, 1.0, "share of each mini-batch's box, landmark and pose terms OHEM keeps")
    face_ohem: str = setting("hardest", help="OHEM of the face/no-face term: 'middle' would drop the rare "
                             "profile faces as too hard, and detection of them with it",
                             choices=("middle", "hardest", "none"))
    face_ohem_keep: float = setting(0.7, 0.1, 1.0, "share of each mini-batch's face/no-face term kept")
    flip_prob: float = setting(0.5, 0.0, 1.0, "chance of a horizontal flip")
    roll_prob: float = setting(0.5, 0.0, 1.0, "chance of an in-plane rotation")
    max_roll_deg: float = setting(25.0, 0.0, 25.0,
                                  "largest in-plane rotation (25 keeps the 48 px view inside a 1.5x crop)")
    jitter: float = setting(0.04, 0.0, 0.2, "box shift and scale jitter, in box sides")
    colour_prob: float = setting(0.8, 0.0, 1.0, "chance of brightness / contrast / colour change")
    blur_prob: float = setting(0.15, 0.0, 1.0, "chance of a Gaussian blur")
    noise_prob: float = setting(0.15, 0.0, 1.0, "chance of sensor noise")
    grey_prob: float = setting(0.15, 0.0, 1.0, "chance of a greyscale (IR-like) image")
    low_light_prob: float = setting(0.15, 0.0, 1.0, "chance of a dark, low-contrast (night) image")
    yaw_band_deg: float = setting(15.0, 1.0, 90.0, "width of the |yaw| and pitch bands that are balanced")
    max_band_weight: float = setting(12.0, 1.0, 100.0,
                                     "faces of rare |yaw| and pitch bands are over-sampled by up to this factor")
    band_balance: str = setting("joint", help="pose bands balanced over all faces together, or over real "
                                "photos and synthesized views each on their own", choices=("joint", "per_source"))
    synth_weight: float = setting(1.0, 0.1, 20.0, "synthesized large-pose views are drawn this many times as often "
                                  "as their pose bands alone would give")
    profile_mesh_context: float = setting(1.6, 1.0, 4.0, "face mesh: MediaPipe sees a square this many face-box "
                                          "sides wide around the face")
    profile_mesh_min_side: int = setting(256, 64, 2048, "face mesh: smaller windows are enlarged to this many px")
    profile_views_per_face: int = setting(1, 0, 20, "large-pose views synthesized from each usable real face")
    profile_max_source_yaw_deg: float = setting(35.0, 0.0, 90.0,
                                                "only faces turned less than this are profiled (warps degrade)")
    profile_min_yaw_deg: float = setting(20.0, 0.0, 90.0, "synthesized |yaw| is drawn from this ...")
    profile_max_yaw_deg: float = setting(80.0, 0.0, 89.0, "... to this")
    profile_pitch_prob: float = setting(0.4, 0.0, 1.0, "share of synthesized views whose pitch is changed too")
    profile_min_pitch_deg: float = setting(-50.0, -89.0, 0.0, "their pitch is drawn from this (looking down) ...")
    profile_max_pitch_deg: float = setting(30.0, 0.0, 89.0, "... to this (looking up)")
    profile_pivot_depth: float = setting(0.35, 0.0, 2.0,
                                         "the head turns about a point this many face widths behind the mesh")
    profile_outline_scale: float = setting(1.4, 1.05, 3.0,
                                           "the still head outline, in face-mesh radii; the band inside it "
                                           "stretches over the side that comes into view")
    profile_window_scale: float = setting(2.2, 1.5, 5.0, "a synthesized image spans this many face sides")
    profile_depth_scale: float = setting(1.3, 0.5, 3.0,
                                         "MediaPipe's depth is stretched by this before a turn: at 1.0 the "
                                         "teachers read 20 and 40 deg turns as 0.8 of that, at 1.3 as 0.98-1.0 "
                                         "(measured on training faces)")
    profile_teacher_reliable_yaw_deg: float = setting(70.0, 0.0, 90.0,
                                                      "the teachers check a synthesized label only up to this |yaw|")
    profile_teacher_check_deg: float = setting(10.0, 1.0, 180.0,
                                               "a synthesized face is dropped when the teachers differ from its "
                                               "exact label by more than this")
    sweep_max_source_yaw_deg: float = setting(10.0, 0.0, 45.0,
                                              "`train sweep` turns held-out faces whose yaw and pitch are within this")

    def check(self) -> None:
        """Ranges given as two keys must not be empty."""
        for lo, hi in (("negative_iou", "part_iou"), ("part_iou", "positive_iou"),
                       ("profile_min_yaw_deg", "profile_max_yaw_deg")):
            if getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"training.{lo} = {getattr(self, lo)} must not exceed "
                                  f"training.{hi} = {getattr(self, hi)}")


@dataclass
class GuiSettings:
    timeline_s: float = setting(30.0, 5.0, 600.0, "seconds of yaw/pitch history shown in the window's timeline")
    calibration_countdown_s: float = setting(3.0, 0.0, 10.0,
                                             "countdown before a calibration asked for in the window starts, "
                                             "so the driver can face the road first")
    refresh_s: float = setting(0.1, 0.02, 2.0, "how often the timeline and the status figures are redrawn")
    poll_s: float = setting(0.05, 0.01, 0.5,
                            "longest wait for a frame before the worker looks at its commands, so a "
                            "click or closing the window never waits long")
    stop_wait_s: float = setting(1.0, 0.1, 10.0, "closing waits this long for the worker thread to finish")
    stats_window_s: float = setting(1.0, 0.1, 60.0, "frames per second and latency shown are averaged over this long")
    slider_steps: int = setting(1000, 10, 100000, "positions of a threshold slider across its whole range")


@dataclass
class Config:
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    cascade: CascadeSettings = field(default_factory=CascadeSettings)
    driver: DriverSettings = field(default_factory=DriverSettings)
    smoother: SmootherSettings = field(default_factory=SmootherSettings)
    attention: AttentionSettings = field(default_factory=AttentionSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    recorder: RecorderSettings = field(default_factory=RecorderSettings)
    gui: GuiSettings = field(default_factory=GuiSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"version": CONFIG_VERSION, **dataclasses.asdict(self)}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, so a crash never leaves half a configuration behind."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(to_toml(self.to_dict()), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> "Config":
        """Build and validate; missing keys take their defaults, unknown keys are errors."""
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"{source}: version = {version!r} is not supported (allowed: {CONFIG_VERSION})")
        config = cls()
        sections = {f.name: f for f in dataclasses.fields(cls)}
        for name, values in data.items():
            if name not in sections:
                raise ConfigError(f"{source}: unknown section [{name}] (allowed: {', '.join(sections)})")
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{name}] must be a table of keys")
            setattr(config, name, _build_section(getattr(config, name), values, f"{source}: {name}"))
        for section in dataclasses.fields(cls):
            check = getattr(getattr(config, section.name), "check", None)
            if check is not None:
                try:
                    check()
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {exc}") from exc
        return config

    def replace(self, section: str, **values: Any) -> "Config":
        """A validated copy with some keys of one section changed (used by the GUI and tuning)."""
        data = self.to_dict()
        data[section] = {**data[section], **values}
        return Config.from_dict(data)


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of its allowed range."""


def _build_section(current: Any, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(current)}
    kwargs = dataclasses.asdict(current)
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}.{key} is not a known key (allowed: {', '.join(fields)})")
        kwargs[key] = check_value(fields[key], value, f"{where}.{key}")
    return type(current)(**kwargs)


def check_value(f: dataclasses.Field, value: Any, where: str) -> Any:
    """Coerce ints to floats where a float is expected; reject everything else that is off."""
    kind = type(f.default)
    meta = f.metadata
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} must be true or false")
        return value
    if kind is str:
        if not isinstance(value, str) or (meta["choices"] and value not in meta["choices"]):
            raise ConfigError(f"{where} = {value!r} is not allowed (allowed: {', '.join(meta['choices'])})")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} = {value!r} must be a number")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where} = {value!r} must be a whole number")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} must be a finite number")
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{where} = {value!r} is out of range (allowed: {lo} to {hi})")
    return value


def describe() -> list[tuple[str, str, Any, Any, Any, str]]:
    """(section, key, default, lo, hi, help) for every key: for the README and the GUI."""
    rows = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):
            rows.append((section.name, f.name, f.default, f.metadata["lo"], f.metadata["hi"],
                         f.metadata["help"]))
    return rows


def to_toml(data: dict[str, Any]) -> str:
    """TOML for a flat document of scalars and one level of tables (all this config needs)."""
    lines = [f"{k} = {_toml_scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]"] + [f"{k} = {_toml_scalar(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
