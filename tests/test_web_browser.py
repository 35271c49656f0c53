"""The star page in a real browser: headless Chromium runs lightcurve.js against a live
uvicorn server and the plot draws every point (with no network, no CSP complaint, no JS
error). Saves a screenshot to tests/artifacts/ for people to look at."""

import base64

import pytest

pytestmark = pytest.mark.chromium

from browser import (
    ARTIFACTS,
    CHROMEDRIVER,
    ElementAttributes,
    WebDriver,
    chromium,
    page_problems,
)


def test_light_curve_draws_every_point(server, tmp_path):
    base, facts, _ = server
    result = chromium(["--dump-dom", f"{base}/stars/1"], tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    parser = ElementAttributes("lightcurve")
    parser.feed(result.stdout)
    assert parser.found is not None, result.stdout[:2000]
    assert parser.found.get("data-drawn") == "true", parser.found
    assert int(parser.found["data-points"]) == len(facts["points"][1]) == 48
    with_error = sum(1 for p in facts["points"][1] if p["mag_err"] > 0)
    assert with_error > 0 and int(parser.found["data-error-bars"]) == with_error  # issue 19 #20
    assert "48 points" in result.stdout  # the status line under the plot
    assert 'class="lc-toggle"' in result.stdout  # filter toggles were built
    assert page_problems(result.stderr) == []


def test_phase_folding_from_the_address(server, tmp_path):
    base, _, _ = server
    result = chromium(["--dump-dom", f"{base}/stars/1#fold=0.3"], tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    parser = ElementAttributes("lightcurve")
    parser.feed(result.stdout)
    assert parser.found.get("data-drawn") == "true"
    assert parser.found["data-points"] == "48"  # each point counted once, though drawn twice
    assert "folded on P = 0.3 d" in result.stdout
    assert page_problems(result.stderr) == []


def test_pages_load_cleanly_in_the_browser(server, tmp_path):
    base, _, _ = server
    for path in ("/", "/stars?sort=var", "/stars/4", "/stars/9999"):
        result = chromium(["--dump-dom", base + path], tmp_path / "profile")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "clinepipe" in result.stdout, path
        assert page_problems(result.stderr) == [], path
    empty = chromium(["--dump-dom", f"{base}/stars/4"], tmp_path / "profile").stdout
    parser = ElementAttributes("lightcurve")
    parser.feed(empty)
    assert parser.found["data-drawn"] == "true" and parser.found["data-points"] == "0"


def test_star_page_screenshot(server, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    base, _, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "star_page.png"
    shot.unlink(missing_ok=True)
    result = chromium([f"--screenshot={shot}", "--window-size=1200,800", f"{base}/stars/1"],
                      tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    image = mpimg.imread(shot)
    assert image.shape[:2] == (800, 1200)
    rgb = image[..., :3]
    assert rgb.std() > 0.05  # not a blank page
    # the plot drew points: many pixels in the V (green #2a9d3a) and R (red #c8322d) colours
    green = np.all(np.abs(rgb - np.array([0x2a, 0x9d, 0x3a]) / 255) < 0.08, axis=-1).sum()
    red = np.all(np.abs(rgb - np.array([0xc8, 0x32, 0x2d]) / 255) < 0.08, axis=-1).sum()
    assert green > 200 and red > 200, (green, red)


def test_folded_screenshot(server, tmp_path):
    import matplotlib.image as mpimg

    base, _, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "star_page_folded.png"
    shot.unlink(missing_ok=True)
    result = chromium([f"--screenshot={shot}", "--window-size=1200,800",
                       f"{base}/stars/1#fold=0.3"], tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and mpimg.imread(shot)[..., :3].std() > 0.05


# ----------------------------------------------------------------------------- interaction
# Drives Chromium through chromedriver's W3C WebDriver HTTP API (httpx only, no Selenium):
# real pointer events for hover, drag-zoom, wheel, filter toggles and folding.

@pytest.fixture()
def driver(server, tmp_path):
    if CHROMEDRIVER is None:
        pytest.skip("chromedriver is not installed (Debian: apt install chromium-driver)")
    pytest.importorskip("httpx")
    d = WebDriver(tmp_path / "profile")
    yield d
    d.close()


def test_hover_zoom_toggle_and_fold(server, driver):
    base, _, _ = server
    lc = "#lightcurve"
    driver.cmd("POST", "/url", {"url": f"{base}/stars/1"})
    driver.wait_for(lc, "data-drawn", "true")
    assert driver.attribute(lc, "data-points") == "48"
    canvas = driver.find(f"{lc} canvas")
    rect = driver.cmd("GET", f"/element/{canvas}/rect")

    def at(px, py):  # canvas pixel -> pointer move in the viewport
        return {"type": "pointerMove", "duration": 0, "origin": "viewport",
                "x": int(rect["x"] + px), "y": int(rect["y"] + py)}

    # hover: the first drawn point shows a tooltip with its magnitude, error and time
    point = driver.script("var s = document.getElementById('lightcurve').lightCurve.screen[0];"
                          "return [s.px, s.py];")
    driver.pointer(at(*point))
    tip = driver.find(f"{lc} [data-role=tip]")
    assert driver.cmd("GET", f"/element/{tip}/property/hidden") is False
    text = driver.cmd("GET", f"/element/{tip}/text")
    assert "±" in text and "BJD 2460736" in text and "UTC" in text and ".fits" in text
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "star_page_hover.png").write_bytes(base64.b64decode(driver.cmd("GET", "/screenshot")))

    # drag a rectangle over the first night: fewer points in view; reset brings all back
    box = driver.script("var b = document.getElementById('lightcurve').lightCurve.box;"
                        "return [b.left, b.top, b.right, b.bottom];")
    left, top, right, bottom = box
    driver.pointer(at(left + 2, top + 2), {"type": "pointerDown", "button": 0},
                   at((left + right) / 2, bottom - 2), {"type": "pointerUp", "button": 0})
    zoomed = int(driver.attribute(lc, "data-points"))
    assert 0 < zoomed < 48
    driver.cmd("POST", f"/element/{driver.find(f'{lc} [data-role=reset]')}/click", {})
    assert driver.attribute(lc, "data-points") == "48"

    # the wheel zooms in around the pointer
    driver.cmd("POST", "/actions", {"actions": [{"type": "wheel", "id": "wheel", "actions": [
        {"type": "scroll", "x": int(rect["x"] + (left + right) / 2),
         "y": int(rect["y"] + (top + bottom) / 2), "deltaX": 0, "deltaY": -600,
         "origin": "viewport"}]}]})
    assert int(driver.attribute(lc, "data-points")) < 48
    driver.cmd("POST", f"/element/{canvas}/click", {})  # (a click does not zoom)
    driver.cmd("POST", f"/element/{driver.find(f'{lc} [data-role=reset]')}/click", {})

    # untick R: only the 24 V points remain
    boxes = driver.cmd("POST", "/elements", {"using": "css selector", "value": f"{lc} .lc-toggle input"})
    assert len(boxes) == 2
    driver.cmd("POST", f"/element/{next(iter(boxes[1].values()))}/click", {})
    assert driver.attribute(lc, "data-points") == "24"
    driver.cmd("POST", f"/element/{next(iter(boxes[1].values()))}/click", {})
    assert driver.attribute(lc, "data-points") == "48"

    # fold on a typed period: every point once, the address remembers it
    period = driver.find(f"{lc} [data-role=period]")
    driver.cmd("POST", f"/element/{period}/clear", {})
    driver.cmd("POST", f"/element/{period}/value", {"text": "0.3"})
    driver.cmd("POST", f"/element/{driver.find(f'{lc} [data-role=fold]')}/click", {})
    status = driver.cmd("GET", f"/element/{driver.find(f'{lc} [data-role=status]')}/text")
    assert "folded on P = 0.3 d" in status
    assert driver.attribute(lc, "data-points") == "48"
    assert driver.cmd("GET", "/url").endswith("#fold=0.3")
    driver.cmd("POST", f"/element/{driver.find(f'{lc} [data-role=double]')}/click", {})
    assert driver.cmd("GET", "/url").endswith("#fold=0.6")
    driver.cmd("POST", f"/element/{driver.find(f'{lc} [data-role=time]')}/click", {})
    assert "time axis" in driver.cmd("GET", f"/element/{driver.find(f'{lc} [data-role=status]')}/text")
