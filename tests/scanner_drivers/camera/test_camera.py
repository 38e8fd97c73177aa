"""Camera driver over a video written by cv2.VideoWriter, an image folder, and a missing V4L2 device."""

from __future__ import annotations

import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner_drivers.camera.driver import CameraDriver, parse_camera_url
from scanner_drivers.types import DeviceError, DeviceUrlError, ImageCapture


def _decode(c: ImageCapture) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(c.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return np.asarray(img)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i + 20, np.uint8))
    writer.release()
    return path


def test_video_frames_in_order_then_exhausted(video: Path) -> None:
    cam = CameraDriver(f"video://{video}")
    cam.start()
    levels = [round(float(_decode(cam.capture()).mean()) / 40) for _ in range(5)]
    assert levels == [0, 1, 2, 3, 4] or levels == [1, 2, 3, 4, 5]
    with pytest.raises(DeviceError):
        cam.capture()
    cam.stop()


def test_video_loops_when_asked(video: Path) -> None:
    cam = CameraDriver(f"video://{video}?loop=1&encode=png")
    cam.start()
    shots = [cam.capture() for _ in range(7)]
    assert all(s.content_type == "image/png" and s.kind == "camera" for s in shots)
    assert np.array_equal(_decode(shots[0]), _decode(shots[5]))
    assert len({s.name for s in shots}) == 7
    cam.stop()


def test_video_played_live_gives_a_frame_after_the_trigger(video: Path) -> None:
    statuses: queue.Queue[tuple[bool, str]] = queue.Queue()
    cam = CameraDriver(f"video://{video}?live=1")
    cam.start(lambda _d, up, detail: statuses.put((up, detail)))
    try:
        assert statuses.get(timeout=10) == (True, "streaming")
        shot = cam.capture(timeout_s=10)
        assert shot.content_type == "image/jpeg" and _decode(shot).shape == (48, 64, 3)
    finally:
        cam.stop()
        assert cam.join(10)


def test_image_folder_skips_unreadable_files(tmp_path: Path) -> None:
    for i, value in enumerate((10, 200)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 8), value, np.uint8))
    (tmp_path / "001a.png").write_bytes(b"garbage")
    cam = CameraDriver(f"images://{tmp_path}?encode=png")
    cam.start()
    assert int(_decode(cam.capture()).mean()) == 10
    assert int(_decode(cam.capture()).mean()) == 200
    with pytest.raises(DeviceError):
        cam.capture()


def test_missing_devices_are_device_errors(tmp_path: Path) -> None:
    statuses: queue.Queue[tuple[bool, str]] = queue.Queue()
    cam = CameraDriver("v4l2:///dev/video-none?reconnect_max=0.2")
    cam.start(lambda _d, up, detail: statuses.put((up, detail)))
    try:
        up, _detail = statuses.get(timeout=10)
        assert up is False
        with pytest.raises(DeviceError):
            cam.capture(timeout_s=0.2)
    finally:
        cam.stop()
        assert cam.join(10)
    with pytest.raises(DeviceError):
        CameraDriver(f"video://{tmp_path}/none.avi").start()
    with pytest.raises(DeviceError):
        CameraDriver(f"images://{tmp_path}/none").start()


def test_stream_options_ride_after_the_hash() -> None:
    cfg = parse_camera_url("rtsp://10.0.0.5:554/stream1?channel=2#width=1920&height=1080&encode=png")
    assert cfg.source == "rtsp://10.0.0.5:554/stream1?channel=2"
    assert (cfg.width, cfg.height, cfg.encode) == (1920, 1080, "png")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://cam/x",
        "rtsp:///nohost",
        "v4l2://dev/video0",
        "v4l2:///dev/video0?width=-1",
        "v4l2:///dev/video0?encode=gif",
        "http://cam/mjpg#zoom=2",
        "video:///x.avi?quality=101",
    ],
)
def test_bad_camera_urls(url: str) -> None:
    with pytest.raises(DeviceUrlError):
        parse_camera_url(url)


class _MjpegCamera(BaseHTTPRequestHandler):
    """An IP camera's MJPEG-over-HTTP stream (multipart/x-mixed-replace), bounded to 250 frames."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in range(250):
                _ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), (i * 10) % 250, np.uint8))
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(buf)
                self.wfile.write(head + buf.tobytes() + b"\r\n")
                time.sleep(0.04)  # the camera's frame rate, not the test's clock
        except OSError:
            pass


def test_http_mjpeg_stream() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MjpegCamera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cam = CameraDriver(f"http://127.0.0.1:{server.server_address[1]}/video.mjpg#encode=png")
    statuses: queue.Queue[tuple[bool, str]] = queue.Queue()
    cam.start(lambda _d, up, detail: statuses.put((up, detail)))
    try:
        assert statuses.get(timeout=10) == (True, "streaming")
        first = cam.capture(timeout_s=10)
        second = cam.capture(timeout_s=10)
        assert first.content_type == "image/png" and _decode(second).shape == (48, 64, 3)
        assert first.name != second.name
    finally:
        cam.stop()
        assert cam.join(10)
        server.shutdown()
        server.server_close()


def test_a_read_handled_late_gets_the_frame_of_its_own_trigger() -> None:
    # Frames are fed as the grabber thread would, with the times they were taken; no device needed.
    cam = CameraDriver("v4l2:///dev/video0?history=4&encode=png")
    frames = [np.full((8, 8), 10 * i, np.uint8) for i in range(6)]
    for i in range(4):
        cam._remember(100.0 + i, frames[i])

    def grey(capture: ImageCapture) -> int:
        decoded = cv2.imdecode(np.frombuffer(capture.data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert decoded is not None
        return int(decoded[0, 0])

    # The read at 101.5 was handled after frames up to 103 had come: it gets the frame taken at 102.
    assert grey(cam.capture(timeout_s=0.01, at_monotonic=101.5)) == 20
    assert grey(cam.capture(timeout_s=0.01, at_monotonic=100.0)) == 0
    # Two more frames push out the ones of 100 and 101: a read at 100.5 has lost its frame.
    cam._remember(104.0, frames[4])
    cam._remember(105.0, frames[5])
    with pytest.raises(DeviceError, match="fell behind"):
        cam.capture(timeout_s=0.01, at_monotonic=100.5)
    assert grey(cam.capture(timeout_s=0.01, at_monotonic=101.2)) == 20
    assert parse_camera_url("v4l2:///dev/video0").history == 16
    with pytest.raises(DeviceUrlError):
        parse_camera_url("v4l2:///dev/video0?history=0")
