"""`bench`: our cascade against facenet-pytorch's `MTCNN.detect`, side by side in one process.

The three paths run on the same frames, alternating frame by frame, so that a noisy shared
machine slows them alike and the ratios stay meaningful. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from monitor.config import Config

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "webcam_office_head_motion.avi"
DEFAULT_SIZE = (640, 480)
DEFAULT_FRAMES = 200


def register(sub: argparse._SubParsersAction) -> dict:
    b = sub.add_parser("bench", help="time our cascade against facenet-pytorch's MTCNN (JSON)")
    b.add_argument("--source", type=Path, default=DEFAULT_CLIP,
                   help="video file or image folder (default: the 53 s webcam clip in ../shared/data/video)")
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads for every path (default 1)")
    b.add_argument("--min-face", type=int, default=80, help="minimum face size in pixels, for both (default 80)")
    b.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames to time (default 200)")
    b.add_argument("--size", default="640x480", help="frames are resized to WxH first (default 640x480; 'none' keeps)")
    b.add_argument("--config", type=Path, help="configuration TOML (cascade settings)")
    b.add_argument("--pace-ms", type=float, default=0.0,
                   help="idle this long before each timed call, as between a camera's frames (33 at 30 fps): "
                        "the CPU and its caches go cold in between, as in real use (default 0: back to back)")
    b.add_argument("--pipeline", action="store_true",
                   help="instead: the whole headless monitor in real time on a 30 fps clip made from the source "
                        "at --size; reports CPU load and capture-to-result latency")
    b.add_argument("--seconds", type=float, default=20.0, help="length of the --pipeline run (default 20)")
    b.add_argument("--fpnet", action="store_true",
                   help="instead: FPNet alone on one 48x48 face per call, next to O-Net's multiply-adds as bare "
                        "matrix products (the floor for any implementation of its layers)")
    b.add_argument("--calls", type=int, default=3000, help="timed calls of each kind with --fpnet (default 3000)")
    return {"bench": cmd_bench}


def load_frames(source: Path, count: int, size: tuple[int, int] | None) -> list[np.ndarray]:
    from monitor.capture import EndOfSource, open_source

    if not Path(source).exists():
        raise FileNotFoundError(f"{source} does not exist: pass --source VIDEO|FOLDER")
    src = open_source(str(source), Config().capture)
    frames = []
    try:
        while len(frames) < count:
            image = src.read()
            if image is not None:
                frames.append(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) if size else image)
    except EndOfSource:
        pass
    finally:
        src.close()
    if not frames:
        raise FileNotFoundError(f"{source} gave no frames")
    return frames


def cmd_bench(args: argparse.Namespace, config: Config | None) -> int:
    size = None if args.size == "none" else tuple(int(v) for v in args.size.lower().split("x"))
    if args.pipeline:
        print(json.dumps(pipeline_bench(args.source, size or DEFAULT_SIZE, args.seconds, config or Config())))
        return 0
    if args.fpnet:
        print(json.dumps(fpnet_bench(args.threads, args.calls)))
        return 0
    result = bench(args.source, args.threads, args.min_face, args.frames, size, config or Config(), args.pace_ms)
    print(json.dumps(result))
    return 0


def bench(source: Path, threads: int, min_face: int, count: int, size: tuple[int, int] | None,
          config: Config, pace_ms: float = 0.0) -> dict:
    import torch
    from facenet_pytorch import MTCNN

    from monitor.cascade import Cascade, iou
    from monitor.driver import DriverFinder

    torch.set_num_threads(threads)
    frames = load_frames(source, count, size)
    settings = config.replace("cascade", min_face_px=min_face, threads=threads).cascade
    ours = Cascade(settings)
    tracker = DriverFinder(Cascade(settings), config.driver)
    reference = MTCNN(keep_all=True, min_face_size=min_face, device="cpu")
    times = {"facenet": [], "full": [], "tracked": []}
    faces_ref = faces_ours = 0
    ious = []
    with torch.inference_mode():
        for image in frames:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)   # facenet wants RGB; the conversion is its cost
            time.sleep(pace_ms / 1000)
            start = time.perf_counter()
            boxes, _, _ = reference.detect(rgb, landmarks=True)
            times["facenet"].append(time.perf_counter() - start)
            time.sleep(pace_ms / 1000)
            start = time.perf_counter()
            faces = ours.detect(image)
            times["full"].append(time.perf_counter() - start)
            time.sleep(pace_ms / 1000)
            start = time.perf_counter()
            tracker.process(image)   # the whole tracked step: crop, FPNet, pose, driver bookkeeping
            times["tracked"].append(time.perf_counter() - start)
            boxes = [] if boxes is None else boxes
            faces_ref += len(boxes)
            faces_ours += len(faces)
            for box in boxes:
                ious.append(max((iou(np.asarray(box, float), f.box) for f in faces), default=0.0))

    def stats(values: list[float]) -> dict[str, float]:
        ms = np.array(values) * 1000
        return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3)}

    summary = {name: stats(values) for name, values in times.items()}
    return {
        "frames": len(frames), "threads": threads, "min_face": min_face, "pace_ms": pace_ms,
        "frame_size": list(frames[0].shape[1::-1]),
        "facenet_ms": summary["facenet"], "full_ms": summary["full"], "tracked_ms": summary["tracked"],
        "speedup_full": round(summary["facenet"]["p50"] / summary["full"]["p50"], 2),
        "speedup_tracked": round(summary["facenet"]["p50"] / summary["tracked"]["p50"], 2),
        "agreement": {"faces_facenet": faces_ref, "faces_ours": faces_ours,
                      "mean_iou": round(float(np.mean(ious)), 3) if ious else None},
        "pose": ours.pose_trained,
    }


# O-Net's layers for one 48x48 face as (rows, inner, columns) of a matrix product: conv1-conv4 by
# im2col, then dense5 and the four heads together.
ONET_PRODUCTS = ((46 * 46, 27, 32), (21 * 21, 288, 64), (8 * 8, 576, 64), (3 * 3, 256, 128), (1, 1152, 256),
                 (1, 256, 22))


def fpnet_bench(threads: int, calls: int) -> dict:
    """Median time of one FPNet call on one face, as the cascade runs it and as the plain module.

    The floor is the same multiply-adds as bare float32 matrix products, with nothing around them
    (no im2col, pooling or PReLU): no implementation of O-Net's layers on this CPU can be faster.
    The three are timed in turn call by call, so a busy machine slows them alike.
    """
    import torch

    from monitor.fpnet import InferenceFPNet, load_fpnet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, trained = load_fpnet()
    fast = InferenceFPNet(net).to(memory_format=torch.channels_last)
    face = (torch.rand(1, 3, 48, 48) * 255).contiguous(memory_format=torch.channels_last)
    products = [(torch.rand(m, k), torch.rand(k, n)) for m, k, n in ONET_PRODUCTS]
    paths = {"fpnet": lambda: fast(face), "fpnet_module": lambda: net(face),
             "matmul_floor": lambda: [torch.mm(a, b) for a, b in products]}
    times: dict[str, list[float]] = {name: [] for name in paths}
    with torch.inference_mode():
        for i in range(calls + calls // 10):   # the first tenth warms up and is not kept
            for name, call in paths.items():
                start = time.perf_counter()
                call()
                if i >= calls // 10:
                    times[name].append(time.perf_counter() - start)
    median = {name: round(float(np.median(t)) * 1e3, 4) for name, t in times.items()}
    return {"threads": threads, "calls": calls, "fpnet_ms": median["fpnet"],
            "fpnet_module_ms": median["fpnet_module"], "matmul_floor_ms": median["matmul_floor"],
            "multiply_adds": sum(m * k * n for m, k, n in ONET_PRODUCTS), "pose": trained}


PIPELINE_FPS = 30.0


def pipeline_bench(source: Path, size: tuple[int, int], seconds: float, config: Config) -> dict:
    """Run `headless` in real-time mode on a 30 fps clip resampled from `source` (made in a temp folder)."""
    import io
    import tempfile

    from monitor.headless import RunOptions, run

    frames = load_frames(source, 10**6, size)
    src_fps = _fps_of(source)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"),
                                 PIPELINE_FPS, size)
        for i in range(int(seconds * PIPELINE_FPS)):
            writer.write(frames[min(int(i * src_fps / PIPELINE_FPS), len(frames) - 1)])
        writer.release()
        out = io.StringIO()
        summary = run(config, RunOptions(source=str(clip), audio=False), out=out)
    return {"mode": "headless real time", "frame_size": list(size), "source_fps": PIPELINE_FPS,
            "frames": summary["frames"], "dropped_frames": summary["dropped_frames"],
            "cpu_percent": summary["cpu_percent"], "latency_ms": summary["latency_ms"],
            "process_ms": summary["process_ms"], "pose": summary["pose_available"]}


def _fps_of(source: Path) -> float:
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps if fps and fps > 0 else PIPELINE_FPS
