"""Camera driver: one frame per trigger from V4L2, an RTSP/HTTP stream, a video file or an image folder."""

from __future__ import annotations

import collections
import fnmatch
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from scanner_drivers.image_gate import ImageLimits, ImageRefused, check_array, decode, read_file
from scanner_drivers.scanners.scanner import StatusCallback
from scanner_drivers.types import DeviceError, DeviceUrlError, ImageCapture
from scanner_drivers.urlopts import UrlOptions

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("v4l2", "rtsp", "rtsps", "http", "https")
FILE_SCHEMES = ("video", "images")
FIRST_BACKOFF_S = 0.2
# Frames and folder images pass the image gate with its default limits, in the formats a folder may hold.
FRAME_LIMITS = ImageLimits()
FILE_LIMITS = ImageLimits(formats=frozenset({"jpeg", "png", "bmp", "tiff", "webp"}))


@dataclass(frozen=True)
class CameraConfig:
    url: str
    scheme: str
    source: str
    width: int
    height: int
    fps: float
    encode: str
    quality: int
    loop: bool
    pattern: str
    reconnect_max_s: float
    # A video file played as a live stream at its own frame rate (demos, tests of the live path).
    play_live: bool
    # Live frames held, so a read handled late still gets the frame of its own trigger.
    history: int = 16


def parse_camera_url(url: str) -> CameraConfig:
    """Options ride in the query; for rtsp/http they ride after '#', which is never sent to the camera."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in LIVE_SCHEMES + FILE_SCHEMES:
        raise DeviceUrlError(
            f"unknown camera URL scheme {scheme!r} in {url} (use {', '.join(LIVE_SCHEMES + FILE_SCHEMES)})"
        )
    if scheme in ("rtsp", "rtsps", "http", "https"):
        if not parts.netloc:
            raise DeviceUrlError(f"camera stream URL has no host: {url}")
        source = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
        opts = UrlOptions("x://?" + parts.fragment)
        opts.url = url
    else:
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise DeviceUrlError(f"{scheme}:// URL needs an absolute path ({scheme}:///...): {url}")
        source = parts.path
        opts = UrlOptions(url)
    cfg = CameraConfig(
        url=url,
        scheme=scheme,
        source=source,
        width=opts.integer("width", 0, 0, 16384),
        height=opts.integer("height", 0, 0, 16384),
        fps=opts.number("fps", 0.0, 0.0, 1000.0),
        encode=opts.choice("encode", "jpeg", ("jpeg", "png")),
        quality=opts.integer("quality", 90, 1, 100),
        loop=opts.flag("loop", False),
        pattern=opts.text("pattern", "*.jpg,*.jpeg,*.png,*.bmp,*.tif,*.tiff"),
        reconnect_max_s=opts.number("reconnect_max", 5.0, 0.1, 600.0),
        play_live=opts.flag("live", False) if scheme == "video" else False,
        history=opts.integer("history", 16, 1, 256),
    )
    opts.finish()
    return cfg


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class CameraDriver:
    """`capture()` returns the first frame taken at or after the read's trigger time (live; the last
    `history` frames are held so a station running behind still gets the frame of its read), or the
    next frame (files)."""

    def __init__(self, url: str) -> None:
        self.config = parse_camera_url(url)
        self.url = url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: cv2.VideoCapture | None = None
        self._frame_lock = threading.Condition()
        # (monotonic time taken, frame), oldest first; bounded, as frames are large.
        self._history: collections.deque[tuple[float, np.ndarray]] = collections.deque(
            maxlen=self.config.history
        )
        # When the newest frame let go of was taken: a trigger before it has lost its frame.
        self._let_go_at = float("-inf")
        self._files: list[Path] = []
        self._next_file = 0
        self._seq = 0
        self._on_status: StatusCallback = lambda _d, _u, _t: None

    @property
    def live(self) -> bool:
        return self.config.scheme in LIVE_SCHEMES or self.config.play_live

    def start(self, on_status: StatusCallback | None = None) -> None:
        if on_status is not None:
            self._on_status = on_status
        if self.live:
            self._thread = threading.Thread(target=self._grab_loop, name="camera-grabber", daemon=True)
            self._thread.start()
        elif self.config.scheme == "images":
            self._list_images()
        else:
            self._open_video_file()

    def stop(self) -> None:
        self._stop.set()
        if not self.live and self._cap is not None:
            self._cap.release()
            self._cap = None

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _open_capture(self) -> cv2.VideoCapture:
        cfg = self.config
        if cfg.scheme == "video" and not Path(cfg.source).is_file():
            raise DeviceError(f"video file {cfg.source} not found")
        api = cv2.CAP_V4L2 if cfg.scheme == "v4l2" else cv2.CAP_FFMPEG
        cap = cv2.VideoCapture(cfg.source, api)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"camera {cfg.source} cannot be opened")
        if cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        # Keep the driver's queue short so a trigger gets a current frame, not a buffered one.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _grab_loop(self) -> None:
        backoff = FIRST_BACKOFF_S
        up: bool | None = None
        failures = 0
        while not self._stop.is_set():
            if self._cap is None:
                try:
                    self._cap = self._open_capture()
                except DeviceError as exc:
                    failures += 1
                    (log.warning if failures == 1 else log.debug)("camera %s: %s", self.url, exc)
                    if up is not False:
                        up = False
                        self._on_status(self.url, False, str(exc))
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.config.reconnect_max_s)
                    continue
                failures, backoff, up = 0, FIRST_BACKOFF_S, True
                self._on_status(self.url, True, "streaming")
            ok, frame = self._cap.read()
            if not ok or frame is None:
                log.warning("camera %s: stream ended or broke; reopening", self.url)
                self._cap.release()
                self._cap = None
                up = False
                self._on_status(self.url, False, "stream lost")
                continue
            self._remember(time.monotonic(), frame)
            if self.config.play_live:
                self._stop.wait(1.0 / (self._cap.get(cv2.CAP_PROP_FPS) or 25.0))
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if up:
            self._on_status(self.url, False, "stopped")

    def _list_images(self) -> None:
        folder = Path(self.config.source)
        patterns = [p.strip().lower() for p in self.config.pattern.split(",") if p.strip()]
        try:
            names = sorted(
                n for n in os.listdir(folder) if any(fnmatch.fnmatch(n.lower(), p) for p in patterns)
            )
        except OSError as exc:
            raise DeviceError(f"camera folder {folder} unreadable: {exc.strerror or exc}") from exc
        self._files = [folder / n for n in names]
        self._on_status(self.url, True, f"{len(self._files)} images")

    def _open_video_file(self) -> None:
        self._cap = self._open_capture()
        self._on_status(self.url, True, "video open")

    def capture(self, timeout_s: float = 1.0, at_monotonic: float | None = None) -> ImageCapture:
        """One frame, encoded; DeviceError when none arrives within `timeout_s` or the source ran out.

        Live sources give the first frame taken at or after `at_monotonic` (default: now), so a
        read is bound to the frame of its own trigger even when it is handled later.
        """
        if self.live:
            now = time.monotonic()
            trigger = now if at_monotonic is None else min(at_monotonic, now)
            frame = self._wait_live_frame(trigger, timeout_s, now)
        elif self.config.scheme == "images":
            frame = self._next_image()
        else:
            frame = self._next_video_frame()
        self._seq += 1
        return self._encode(frame)

    def _remember(self, taken: float, frame: np.ndarray) -> None:
        with self._frame_lock:
            if len(self._history) == self._history.maxlen:
                self._let_go_at = self._history[0][0]
            self._history.append((taken, frame))
            self._frame_lock.notify_all()

    def _frame_at(self, trigger: float) -> np.ndarray | None:
        """The first held frame taken at or after `trigger`; None while there is none yet."""
        if trigger <= self._let_go_at:
            raise DeviceError(
                f"camera {self.url}: the frame of a read {self._let_go_at - trigger:.2f} s before the"
                " oldest held frame is gone (the station fell behind; raise history=)"
            )
        for taken, frame in self._history:
            if taken >= trigger:
                return frame
        return None

    def _wait_live_frame(self, trigger: float, timeout_s: float, now: float) -> np.ndarray:
        deadline = now + timeout_s
        with self._frame_lock:
            while (frame := self._frame_at(trigger)) is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise DeviceError(f"camera {self.url}: no frame within {timeout_s:.2f} s")
                self._frame_lock.wait(left)
            return frame

    def _next_image(self) -> np.ndarray:
        while True:
            if self._next_file >= len(self._files):
                if not self.config.loop or not self._files:
                    raise DeviceError(f"camera folder {self.config.source}: no more images")
                self._next_file = 0
            path = self._files[self._next_file]
            self._next_file += 1
            try:
                # Through the image gate: a crafted file in the folder is refused by its header, not decoded.
                _, image = decode(read_file(path, FILE_LIMITS), FILE_LIMITS)
                return np.asarray(image)
            except (ImageRefused, OSError) as exc:
                log.warning(
                    "camera folder %s: %s is not a readable image (%s); skipped",
                    self.config.source,
                    path.name,
                    exc,
                )

    def _next_video_frame(self) -> np.ndarray:
        if self._cap is None:
            raise DeviceError(f"camera {self.url} is not started")
        ok, frame = self._cap.read()
        if (not ok or frame is None) and self.config.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            raise DeviceError(f"video {self.config.source}: no more frames")
        return np.asarray(frame)

    def _encode(self, frame: np.ndarray) -> ImageCapture:
        cfg = self.config
        try:
            # A device or stream can hand over any frame size: the same limits as for encoded images.
            check_array(frame, FRAME_LIMITS)
        except ImageRefused as exc:
            raise DeviceError(f"camera {self.url}: frame refused: {exc}") from None
        if cfg.encode == "png":
            ok, buf = cv2.imencode(".png", frame)
            ctype, ext = "image/png", "png"
        else:
            if frame.dtype != np.uint8:
                frame = (frame / 257).astype(np.uint8)
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, cfg.quality])
            ctype, ext = "image/jpeg", "jpg"
        if not ok:
            raise DeviceError(f"camera {self.url}: frame could not be encoded")
        name = f"camera-{self._seq:06d}.{ext}"
        return ImageCapture(
            kind="camera", data=buf.tobytes(), name=name, at_utc=_now_utc(), content_type=ctype
        )
