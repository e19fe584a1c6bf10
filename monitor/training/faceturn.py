"""Face profiling (Zhu et al. 2016, the method behind 300W-LP): a real face photo, turned in 3-D.

The real training photos hold almost no face beyond 60 deg of yaw, so a student trained on them
never learns to say 70. Given MediaPipe's dense mesh of a face (468 points with depth), the head
is rotated about a pivot behind the face, projected orthographically, and the photo is warped
piecewise-affinely onto the new mesh: mesh triangles painted back to front, the ones that turn
away dropped, and the ring between the face's outline and the (static) head outline stretched,
which is how 300W-LP fills the newly visible side of the head. A triangle that was hidden in the
photo (the far cheek of a face already turned) borrows its mirror triangle's texture.

The label is exact. MediaPipe's points fit the mean shape as o = s Rc c + t, and the AFLW pose is
R = S Rc^T S with S = diag(1, -1, -1) (teachers' README). Turning the points by Q in camera axes
gives Rc' = Q Rc, hence R' = R (S Q^T S). So a camera-axes turn written in the AFLW convention
as dR acts from the right, R' = R dR, with Q = S dR^T S. Note the side: because of the transpose
in the convention, the camera-axes turn multiplies R from the right, not from the left. For a
level head dR = Ry(d_yaw) simply adds d_yaw to the yaw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.rotation import euler_to_matrix

AXES_FLIP = np.diag([1.0, -1.0, -1.0])     # MediaPipe's image axes (y down, z away) <-> AFLW's
MEAN_SHAPE_FILE = "mediapipe_facemesh_mean_shape.csv"
# MediaPipe mesh indices, as seen in the image: the subject's right eye is on the image's left.
EYE_LEFT_IMG = (33, 133, 159, 145)
EYE_RIGHT_IMG = (263, 362, 386, 374)
NOSE_TIP, MOUTH_LEFT_IMG, MOUTH_RIGHT_IMG = 1, 61, 291
SUBPIXEL_BITS = 4                           # cv2 polygon fill with 1/16 px vertices
MIN_TRIANGLE_AREA_PX = 1e-3


def load_mean_shape(teachers: Path) -> np.ndarray:
    path = Path(teachers) / MEAN_SHAPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the MediaPipe mean shape ships with ../shared/teachers")
    return np.loadtxt(path, delimiter=",", skiprows=1)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: (s, R, t) minimising |dst - (s R src + t)|^2 with det R = +1."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    u, d, vt = np.linalg.svd(b.T @ a)
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ e @ vt
    scale = float((d * np.diag(e)).sum() / (a ** 2).sum())
    return scale, rot, md - scale * rot @ ms


def mesh_rotation(points: np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
    """The AFLW-convention pose of a mesh (teachers' README: R = S Rc^T S)."""
    _, rc, _ = fit_similarity(mean_shape, np.asarray(points, np.float64))
    return AXES_FLIP @ rc.T @ AXES_FLIP


def camera_turn(d_yaw: float, d_pitch: float) -> np.ndarray:
    """dR in the AFLW convention: pitch first, then yaw, both about camera axes (R' = R dR)."""
    return euler_to_matrix(d_yaw, d_pitch, 0.0)


def mirror_index(mean_shape: np.ndarray) -> np.ndarray:
    """For each mesh point, the point on the other side of the face (the mean shape is symmetric)."""
    mirrored = mean_shape * np.array([-1.0, 1.0, 1.0])
    d = ((mean_shape[None, :, :] - mirrored[:, None, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def delaunay(points: np.ndarray) -> np.ndarray:
    """(T, 3) vertex indices of the Delaunay triangulation of 2-D points."""
    lo, hi = points.min(axis=0) - 1, points.max(axis=0) + 1
    subdiv = cv2.Subdiv2D((int(np.floor(lo[0])), int(np.floor(lo[1])),
                           int(np.ceil(hi[0] - lo[0])) + 1, int(np.ceil(hi[1] - lo[1])) + 1))
    lookup = {}
    for i, p in enumerate(points):
        lookup[subdiv.insert((float(p[0]), float(p[1])))] = i
    tris = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2):
        idx = []
        for x, y in t:
            vertex = subdiv.findNearest((float(x), float(y)))[0]
            idx.append(lookup.get(vertex, -1))
        if min(idx) >= 0:
            tris.append(idx)
    return np.array(tris, dtype=np.int32).reshape(-1, 3)


def signed_area(tri: np.ndarray) -> np.ndarray:
    """Twice the signed area of (..., 3, 2) triangles."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def paint(maps: tuple[np.ndarray, np.ndarray], dst: np.ndarray, src: np.ndarray) -> None:
    """Point the remap tables of the pixels under triangle `dst` at the matching pixels of `src`."""
    map_x, map_y = maps
    h, w = map_x.shape
    x0, y0 = np.maximum(np.floor(dst.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(dst.max(axis=0)).astype(int) + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    poly = np.round((dst - [x0, y0]) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillConvexPoly(mask, poly, 1, cv2.LINE_8, SUBPIXEL_BITS)
    # The outline as well: neighbours overlap by a pixel instead of leaving seams of old pixels.
    cv2.polylines(mask, [poly], True, 1, 1, cv2.LINE_8, SUBPIXEL_BITS)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return
    a = cv2.getAffineTransform(dst.astype(np.float32), src.astype(np.float32))
    gx, gy = xs + x0, ys + y0
    map_x[gy, gx] = a[0, 0] * gx + a[0, 1] * gy + a[0, 2]
    map_y[gy, gx] = a[1, 0] * gx + a[1, 1] * gy + a[1, 2]


@dataclass
class View:
    """One synthesized face: the warped window and where the face now is in it."""
    image: np.ndarray        # (H, W, 3) BGR, the window around the face
    points: np.ndarray       # (468, 3) the turned mesh, in the window's pixels (depth stretched)
    box: np.ndarray          # (4,) min/max of the turned mesh's x and y (the annotated box)
    landmarks: np.ndarray    # (5, 2) MTCNN order: eyes, nose, mouth corners, as seen in the image
    rotation: np.ndarray     # (3, 3) the new pose, R' = R dR (exact)


class Profiler:
    """Turns a meshed face photo to a new pose.

    pivot_depth: the head turns about a point this many face widths behind the mesh's centroid
    (the neck, not the nose), so a turned face also slides sideways as a real one does.
    outline_scale: the head's outline, in face-mesh radii about its centre; it stays put (a
    sphere's outline does not move when it spins) and the band between it and the face's edge
    stretches over the side of the head that comes into view.
    window_scale: the synthesized image spans this many face-box sides, enough context for the
    detector and for the negatives mined around the face.
    depth_scale: MediaPipe's depth is flatter than a real head's (its own yaw reads about 0.85 of
    the truth), so a turn of its raw mesh looks smaller than its label; depth is stretched by this.
    """

    def __init__(self, mean_shape: np.ndarray, pivot_depth: float, outline_scale: float,
                 window_scale: float, depth_scale: float = 1.0) -> None:
        self.mean_shape = mean_shape
        self.depth_scale = depth_scale
        self.pivot_depth = pivot_depth
        self.outline_scale = outline_scale
        self.window_scale = window_scale
        self.triangles = delaunay(mean_shape[:, :2])
        self.front = np.sign(signed_area(mean_shape[self.triangles][:, :, :2]))
        self.mirror = mirror_index(mean_shape)

    def window(self, points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        c, half = (lo + hi) / 2, self.window_scale * float((hi - lo).max()) / 2
        x1, y1 = max(int(c[0] - half), 0), max(int(c[1] - half), 0)
        x2, y2 = min(int(np.ceil(c[0] + half)), shape[1]), min(int(np.ceil(c[1] + half)), shape[0])
        return x1, y1, x2, y2

    def turn(self, image: np.ndarray, points: np.ndarray, rotation: np.ndarray, d_rot: np.ndarray) -> View:
        """The photo's face turned by dR (AFLW convention, camera axes); `rotation` is its pose now."""
        x1, y1, x2, y2 = self.window(points, image.shape[:2])
        win = image[y1:y2, x1:x2]
        h, w = win.shape[:2]
        src = (np.asarray(points, np.float64) - [x1, y1, 0.0]) * [1.0, 1.0, self.depth_scale]
        width = float(np.ptp(src[:, 0]))
        pivot = src.mean(axis=0) + [0.0, 0.0, self.pivot_depth * width]
        q = AXES_FLIP @ d_rot.T @ AXES_FLIP
        dst = (src - pivot) @ q.T + pivot

        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        maps = (gx, gy)
        self._paint_surroundings(maps, src, dst, (w, h))
        self._paint_face(maps, src, dst)
        out = cv2.remap(win, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lm = np.stack([dst[list(EYE_LEFT_IMG), :2].mean(axis=0), dst[list(EYE_RIGHT_IMG), :2].mean(axis=0),
                       dst[NOSE_TIP, :2], dst[MOUTH_LEFT_IMG, :2], dst[MOUTH_RIGHT_IMG, :2]])
        box = np.concatenate([dst[:, :2].min(axis=0), dst[:, :2].max(axis=0)])
        return View(out, dst.astype(np.float32), box.astype(np.float32), lm.astype(np.float32),
                    rotation @ d_rot)

    def _paint_surroundings(self, maps, src: np.ndarray, dst: np.ndarray, size: tuple[int, int]) -> None:
        """The band between the face's edge (moving) and the head outline and window edge (fixed)."""
        w, h = size
        hull = cv2.convexHull(src[:, :2].astype(np.float32), returnPoints=False).ravel()
        centre = src[hull, :2].mean(axis=0)
        outline = centre + self.outline_scale * (src[hull, :2] - centre)
        edge = np.array([[0, 0], [w / 2, 0], [w - 1, 0], [w - 1, h / 2], [w - 1, h - 1], [w / 2, h - 1],
                         [0, h - 1], [0, h / 2]], np.float64)
        fixed = np.concatenate([outline, edge])
        s_pts = np.concatenate([src[hull, :2], fixed])
        d_pts = np.concatenate([dst[hull, :2], fixed])
        n_face = len(hull)
        for tri in delaunay(s_pts):
            if tri.min() >= n_face or tri.max() < n_face:   # untouched background, or inside the face
                continue
            s, d = s_pts[tri], d_pts[tri]
            if abs(signed_area(s)) > MIN_TRIANGLE_AREA_PX and abs(signed_area(d)) > MIN_TRIANGLE_AREA_PX:
                paint(maps, d, s)

    def _paint_face(self, maps, src: np.ndarray, dst: np.ndarray) -> None:
        tris = self.triangles
        s_area = signed_area(src[tris][:, :, :2])
        d_area = signed_area(dst[tris][:, :, :2])
        facing = np.sign(d_area) == self.front
        hidden_in_photo = np.sign(s_area) != self.front
        order = np.argsort(-dst[tris][:, :, 2].mean(axis=1))    # far (large z) first
        for k in order:
            if not facing[k] or abs(d_area[k]) < MIN_TRIANGLE_AREA_PX:
                continue
            source = self.mirror[tris[k]] if hidden_in_photo[k] else tris[k]
            s = src[source, :2]
            if abs(signed_area(s)) < MIN_TRIANGLE_AREA_PX:
                continue
            paint(maps, dst[tris[k], :2], s)
