"""The desk's X-ray viewer: the full-depth pixel feed and its site scope, then the viewer in real Chromium on
a real GDXray crop (never shipped: read from the shared data folder) and on generated 16-bit scans."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server import admin
from server.app import create_app
from server.db import migrate
from server.settings import ServerSettings, XrayConfig
from server.web.xray_pixels import grey_pixels
from tests.server.conftest import serving
from tests.server.test_web import PASSWORD, login, make_settings

ROOT = Path(__file__).resolve().parents[2]


def gdxray_crop() -> bytes:
    """One real X-ray crop (a handgun) of the shared GDXray set, or a skip where the set is absent."""
    folder = Path(os.environ.get("PARCELGUARD_GDXRAY", ROOT.parent / "shared" / "data" / "xray-gdxray"))
    files = sorted((folder / "test" / "class_0").glob("*.jpg"))
    if not files:
        pytest.skip(f"GDXray crops not found under {folder.name}/ (set PARCELGUARD_GDXRAY)")
    return files[0].read_bytes()


def encode(image: npt.NDArray[Any], ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return bytes(buf)


def dim_scan() -> npt.NDArray[np.uint16]:
    """A 16-bit scan whose whole content lies within 600 counts: flat when cut to 8 bits."""
    y, x = np.mgrid[0:192, 0:256]
    stripes = ((x // 16) % 2) * 400 + ((y // 24) % 2) * 200
    scan: npt.NDArray[np.uint16] = (30000 + stripes).astype(np.uint16)
    return scan


def dual_energy() -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """High and low energy transmission (Beer-Lambert) of a plastic block and a steel disc."""
    h, w = 192, 256
    thickness_org = np.zeros((h, w))
    thickness_org[30:160, 20:120] = 3.0
    thickness_metal = np.zeros((h, w))
    cv2.circle(thickness_metal, (190, 96), 40, 1.0, -1)
    # Attenuation per unit thickness at high and low energy: plastic barely harder at low energy, steel much.
    high = 60000 * np.exp(-(0.30 * thickness_org + 1.20 * thickness_metal))
    low = 50000 * np.exp(-(0.34 * thickness_org + 2.70 * thickness_metal))
    return high.astype(np.uint16), low.astype(np.uint16)


@dataclass
class Items:
    gdxray: int
    dim: int
    pair: int
    sha: dict[str, str]


def seed(settings: ServerSettings, http: httpx.Client | TestClient) -> Items:
    """An officer of site1 and one of site2; three items of site1 with X-rays, synced as a station does."""
    admin.create_user(settings, "olga", PASSWORD, "officer", ["site1"])
    admin.create_user(settings, "otto", PASSWORD, "officer", ["site2"])
    admin.create_user(settings, "sam", PASSWORD, "supervisor", ["*"])
    root = {"Authorization": f"Bearer {admin.create_api_token(settings, 'olga')}"}
    station = {"Authorization": f"Bearer {admin.register_station(settings, 'st-a', 'site1', 'line1')}"}
    high, low = dual_energy()
    blobs = {
        "gdxray": (gdxray_crop(), "image/jpeg"),
        "dim": (encode(dim_scan(), ".tiff"), "image/tiff"),
        "high": (encode(high), "image/png"),
        "low": (encode(low), "image/png"),
    }
    sha = {k: hashlib.sha256(b).hexdigest() for k, (b, _) in blobs.items()}

    def ref(key: str, kind: str) -> dict[str, Any]:
        data, ctype = blobs[key]
        return {"sha256": sha[key], "kind": kind, "content_type": ctype, "size": len(data)}

    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    views = {
        1: [ref("gdxray", "xray")],
        2: [ref("dim", "xray")],
        3: [ref("high", "xray"), ref("low", "xray_low")],
    }
    base = {"type": "parcel", "station_id": "st-a", "boot_id": "b1", "at": at, "decision": "HOLD"}
    events = [
        {
            **base,
            **{"key": f"st-a:b1:{n}", "seq": n, "tracking_id": f"t{n}", "waybill": f"WB{n:08d}"},
            **{"reasons": ["WATCHLIST_MATCH"], "risk": 0.5, "classifier": "off", "images": imgs},
        }
        for n, imgs in views.items()
    ]
    r = http.post(
        "/api/v1/sync", json={"station_id": "st-a", "boot_id": "b1", "events": events}, headers=station
    )
    assert r.is_success, r.text
    for key, (data, ctype) in blobs.items():
        put = http.put(f"/api/v1/images/{sha[key]}", content=data, headers={**station, "Content-Type": ctype})
        assert put.status_code == 201, put.text
    ids = {i["waybill"]: int(i["id"]) for i in http.get("/api/v1/reviews", headers=root).json()}
    return Items(ids["WB00000001"], ids["WB00000002"], ids["WB00000003"], sha)


def test_grey_pixels_keep_the_depth_of_every_format() -> None:
    scan = dim_scan()
    for ext in (".png", ".tiff"):
        got = grey_pixels(encode(scan, ext))
        assert (got.width, got.height, got.bits) == (256, 192, 16)
        assert np.array_equal(np.frombuffer(got.data, "<u2").reshape(192, 256), scan)
    colour = np.zeros((10, 20, 3), np.uint8)
    colour[:, :, 2] = 200  # red in BGR: its luminance, one byte a sample
    got = grey_pixels(encode(colour))
    assert (got.width, got.height, got.bits) == (20, 10, 8) and set(got.data) == {round(0.299 * 200)}
    with pytest.raises(ValueError, match="png"):
        grey_pixels(encode(scan)[:60])  # truncated


def test_pixel_feed_follows_the_images_site(db_url: str) -> None:
    settings = make_settings(db_url)
    with TestClient(create_app(settings)) as c:
        items = seed(settings, c)

        def as_user(name: str) -> None:
            c.cookies.clear()
            login(c, name)

        as_user("olga")
        r = c.get(f"/desk/images/{items.sha['dim']}/pixels")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        assert (r.headers["x-image-width"], r.headers["x-image-height"], r.headers["x-image-bits"]) == (
            "256", "192", "16",
        )  # fmt: skip
        assert np.array_equal(np.frombuffer(r.content, "<u2").reshape(192, 256), dim_scan())
        # The viewer's material colour thresholds come from [server.xray] with the pixels.
        assert (r.headers["x-material-organic-below"], r.headers["x-material-metal-above"]) == ("1.3", "1.7")
        real = c.get(f"/desk/images/{items.sha['gdxray']}/pixels")
        assert real.headers["x-image-bits"] == "8"
        width, height = int(real.headers["x-image-width"]), int(real.headers["x-image-height"])
        assert len(real.content) == width * height
        assert c.get(f"/desk/images/{'0' * 64}/pixels").status_code == 404
        assert c.get("/desk/images/not-a-digest/pixels").status_code in (404, 422)
        as_user("otto")  # an officer of another site: the image is not his to see
        assert c.get(f"/desk/images/{items.sha['dim']}/pixels").status_code == 404
        as_user("sam")
        assert c.get(f"/desk/images/{items.sha['dim']}/pixels").status_code == 403


def test_material_thresholds_must_be_ordered() -> None:
    assert XrayConfig(organic_below=1.2, metal_above=2.0).metal_above == 2.0
    with pytest.raises(ValidationError, match="metal_above must be above"):
        XrayConfig(organic_below=1.8, metal_above=1.5)
    with pytest.raises(ValidationError, match="greater than 1"):
        XrayConfig(organic_below=0.9)
    with pytest.raises(ValidationError, match="Extra inputs"):
        XrayConfig.model_validate({"organic": 1.4})


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Items, str]]:
    database = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(database)
    settings = make_settings(database)
    with serving(settings) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield seed(settings, http), url


# Canvas pixels over the part of the stage the image covers, as [r, g, b] rows.
SAMPLE_JS = """
const c = document.getElementById('xv-canvas'), s = window.parcelguardXray.state();
const [w, h] = window.parcelguardXray.size(), dpr = window.devicePixelRatio || 1;
const x0 = Math.max(0, s.tx), y0 = Math.max(0, s.ty);
const x1 = Math.min(c.width / dpr, s.tx + w * s.scale), y1 = Math.min(c.height / dpr, s.ty + h * s.scale);
const d = c.getContext('2d').getImageData(x0 * dpr, y0 * dpr, (x1 - x0) * dpr, (y1 - y0) * dpr).data;
const out = [];
for (let i = 0; i < d.length; i += 4 * 7) out.push([d[i], d[i + 1], d[i + 2]]);
return out;
"""
# The colour drawn at image point (x, y).
AT_JS = """
const c = document.getElementById('xv-canvas'), s = window.parcelguardXray.state();
const dpr = window.devicePixelRatio || 1;
const px = c.getContext('2d').getImageData((s.tx + arguments[0] * s.scale) * dpr,
                                           (s.ty + arguments[1] * s.scale) * dpr, 1, 1).data;
return [px[0], px[1], px[2]];
"""


@pytest.mark.browser
def test_viewer_in_the_browser(live: tuple[Items, str], chromium: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    items, url = live
    browser = chromium
    browser.set_window_size(1400, 1000)
    shots = ROOT / "docs" / "screens"
    # GDXray may not be shipped, not even in a picture: its screens stay in the ignored artefacts folder.
    private = ROOT / "artifacts" / "screenshots"
    for folder in (shots, private):
        folder.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 20)

    def state() -> dict[str, Any]:
        return dict(browser.execute_script("return window.parcelguardXray.state()"))

    def open_item(item: int, lang: str) -> Any:
        browser.get(f"{url}/desk/items/{item}?lang={lang}")
        wait.until(lambda d: d.find_element(By.ID, "xray-viewer").get_attribute("data-ready") == "true")
        browser.execute_script("document.getElementById('xray-viewer').scrollIntoView()")
        return browser.find_element(By.ID, "xv-stage")

    def keys(text: str) -> None:
        browser.find_element(By.TAG_NAME, "body").click()
        ActionChains(browser).send_keys(text).perform()

    browser.get(f"{url}/login?lang=en")
    browser.find_element(By.ID, "username").send_keys("olga")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "password").submit()
    wait.until(lambda d: "/login" not in d.current_url)

    # A real X-ray: fitted whole into the stage, not blank.
    stage = open_item(items.gdxray, "en")
    first = state()
    assert first["fitted"] and first["views"] == ["high"]
    pixels = np.array(browser.execute_script(SAMPLE_JS))
    assert pixels.std() > 20
    assert browser.find_element(By.ID, "xv-material").get_attribute("disabled") is not None
    browser.save_screenshot(str(private / "xray-gdxray-fit-en.png"))

    # Wheel at a point off-centre: the image point under the pointer stays under it.
    rect = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON()", stage)
    dx, dy = 120, -60
    px, py = rect["width"] / 2 + dx, rect["height"] / 2 + dy
    before = state()
    under = ((px - before["tx"]) / before["scale"], (py - before["ty"]) / before["scale"])
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(stage, dx, dy), 0, -300).perform()
    wait.until(lambda d: state()["scale"] > before["scale"] * 1.5)
    after = state()
    now_under = ((px - after["tx"]) / after["scale"], (py - after["ty"]) / after["scale"])
    assert abs(now_under[0] - under[0]) < 1.0 and abs(now_under[1] - under[1]) < 1.0

    # Drag pans by exactly the pointer's travel.
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(60, 40).release().perform()
    moved = state()
    assert abs(moved["tx"] - after["tx"] - 60) < 1.5 and abs(moved["ty"] - after["ty"] - 40) < 1.5

    # Keys: 1 is one sample per screen pixel, + five times about x3, then N inverts.
    keys("1")
    assert state()["scale"] == 1
    keys("+++++")
    assert abs(state()["scale"] - 1.25**5) < 1e-6
    plain = np.array(browser.execute_script(SAMPLE_JS), dtype=int)
    keys("n")
    assert state()["invert"] is True
    assert browser.find_element(By.ID, "xv-invert").get_attribute("aria-pressed") == "true"
    inverted = np.array(browser.execute_script(SAMPLE_JS), dtype=int)
    # Zoom x3 + invert is the negative of the same view, never a black box.
    assert inverted.shape == plain.shape and (inverted.max(axis=1) < 10).mean() < 0.5
    assert np.abs(inverted + plain - 255).max() <= 2
    browser.save_screenshot(str(private / "xray-gdxray-zoom3-invert-en.png"))
    keys("0")
    assert state()["fitted"]
    # Contrast and brightness by key, on the pixels: a stronger contrast spreads them.
    spread = np.array(browser.execute_script(SAMPLE_JS)).std()
    keys("]]]]]")
    assert state()["contrast"] > 1.5 and np.array(browser.execute_script(SAMPLE_JS)).std() > spread
    keys("z")
    wait.until(
        lambda d: d.execute_script("return document.fullscreenElement && document.fullscreenElement.id")
    )
    assert browser.execute_script("return document.fullscreenElement.id") == "xray-viewer"
    keys("z")
    wait.until(lambda d: not d.execute_script("return document.fullscreenElement"))

    # A 16-bit scan whose detail spans 600 counts: windowed on the samples, the stripes are full contrast.
    open_item(items.dim, "zh")
    assert browser.find_element(By.ID, "xv-fit").text == "适合窗口"
    assert browser.execute_script("return window.parcelguardXray.size()") == [256, 192, 16]
    stripes = [browser.execute_script(AT_JS, x, y)[0] for x, y in ((8, 8), (24, 8), (8, 32), (24, 32))]
    assert max(stripes) - min(stripes) > 200, stripes
    browser.save_screenshot(str(shots / "xray-16bit-window-zh.png"))

    # A dual-energy pair: material colour tells the plastic block from the steel disc; E shows low energy.
    open_item(items.pair, "zh")
    assert state()["views"] == ["high", "low"]
    grey_plastic = browser.execute_script(AT_JS, 70, 95)
    assert max(grey_plastic) - min(grey_plastic) <= 1
    keys("m")
    r, g, b = browser.execute_script(AT_JS, 70, 95)
    assert r > g > b, (r, g, b)  # orange: organic
    r, g, b = browser.execute_script(AT_JS, 190, 96)
    assert b > r and b > g, (r, g, b)  # blue: metal
    air = browser.execute_script(AT_JS, 5, 5)
    assert max(air) - min(air) <= 1  # nothing in the beam stays grey
    browser.save_screenshot(str(shots / "xray-dual-material-zh.png"))
    keys("m")
    high_plastic = browser.execute_script(AT_JS, 70, 95)[0]
    keys("e")
    assert state()["energy"] == "low"
    assert browser.find_element(By.ID, "xv-energy-now").text == "低能"
    # Another picture, windowed on its own range: the steel takes more of it, the plastic shows lighter.
    assert browser.execute_script(AT_JS, 70, 95)[0] > high_plastic + 20
    browser.save_screenshot(str(shots / "xray-dual-low-energy-zh.png"))
