"""The frame behind a light-curve point (issue 19, item 20): a server-made PNG cut-out of the
calibrated frame centred on the star with the aperture and the neighbours drawn, the frame's
QC and previous/next links; 404 for anything unknown; read-only."""

import io
import math

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from web_store import make_engine, populate  # noqa: E402

from clinepipe.ccd.reduced_files import ReducedFrame, write_reduced  # noqa: E402
from clinepipe.store.models import Frame, Measurement  # noqa: E402
from clinepipe.web import create_app  # noqa: E402
from clinepipe.web.frames import APERTURE_RGB, NEIGHBOUR_RGB, SCALE  # noqa: E402

SHAPE = (100, 120)
STAR1 = (60.3, 50.7)   # 0-based x, y of star 1 (bright) in the frame with a file
STAR2 = (60.0, 58.0)   # fainter, 7.3 px above star 1 (FITS y grows upwards)
STAR3 = (20.0, 20.0)   # far away


def gaussian(x0, y0, flux, fwhm=3.0):
    s = fwhm / 2.3548
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return flux * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / s ** 2) / (2 * math.pi * s * s)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    archive = root / "archive"
    archive.mkdir()
    engine = make_engine(root / "clinepipe.db")
    populate(engine, archive)
    rng = np.random.default_rng(3)
    image = (200.0 + rng.normal(0, 5, SHAPE) + gaussian(*STAR1, 4e4) + gaussian(*STAR2, 8e3)
             + gaussian(*STAR3, 2e4)).astype(np.float32)
    frame_file = archive / "calibrated" / "20250301" / "light_002_V_calibrated.fits"
    frame_file.parent.mkdir(parents=True)
    write_reduced(frame_file, ReducedFrame(image, np.full(SHAPE, 5, np.float32),
                                           np.zeros(SHAPE, np.uint8), _header()), keep="image")
    with Session(engine) as s:
        lights = s.scalars(select(Frame).where(Frame.night == "20250301", Frame.kind == "light",
                                               Frame.state == "calibrated", Frame.filter == "V")
                           .order_by(Frame.jd_mid)).all()
        kept = lights[1]
        kept.calibrated_path = frame_file.relative_to(archive).as_posix()
        kept.qc = "high_sky"
        kept.time_source = "UT-OBS"
        kept.time_note = "DATE-OBS had a -07:00 offset; used UT-OBS (they differ by 3600.0 s)"
        for m in s.scalars(select(Measurement).where(Measurement.frame_id == kept.id)):
            m.x, m.y = {1: STAR1, 2: STAR2, 3: STAR3}[m.star_id]
            m.x, m.y = m.x + 1.0, m.y + 1.0  # 1-based in the database
        s.commit()
        ids = [f.id for f in lights]
        all_frames = [fid for (fid,) in s.execute(
            select(Measurement.frame_id).where(Measurement.star_id == 1)
            .order_by(Measurement.jd_mid)).all()]
    with TestClient(create_app(engine, archive=archive)) as client:
        yield client, ids, all_frames
    engine.dispose()


def _header():
    from astropy.io import fits

    h = fits.Header()
    h["CALSTAT"] = "BDF"
    return h


def png(client, url):
    import matplotlib.image as mpimg

    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return (mpimg.imread(io.BytesIO(r.content), format="png")[..., :3] * 255).round()


def test_cutout_is_centred_on_the_star_with_its_aperture(site):
    client, ids, _ = site
    rgb = png(client, f"/stars/1/frames/{ids[1]}/cutout.png")
    h, w, _ = rgb.shape
    assert h == w and h % SCALE == 0
    brightness = rgb.sum(axis=2)
    row, col = np.unravel_index(np.argmax(brightness), brightness.shape)
    # the star's pixel: the cut-out is centred on its nearest pixel (within 1 px of it)
    centre = (h - 1) / 2
    assert abs(row - centre) <= SCALE * 1.5 and abs(col - centre) <= SCALE * 1.5
    # the aperture (5 px, green) goes through the points 5 px left and right of the star
    cx = centre + (STAR1[0] - round(STAR1[0])) * SCALE
    cy = centre - (STAR1[1] - round(STAR1[1])) * SCALE  # rows run downwards in the PNG
    for dx in (-5, 5):
        near = rgb[int(round(cy)) - 2:int(round(cy)) + 3,
                   int(round(cx + dx * SCALE)) - 2:int(round(cx + dx * SCALE)) + 3]
        assert (np.abs(near - APERTURE_RGB).sum(axis=2) < 10).any()
    # star 2 lies 7.3 px *above* star 1: above the centre in the picture, with its circle
    y2 = int(round(cy - (STAR2[1] - STAR1[1]) * SCALE))
    x2 = int(round(cx + (STAR2[0] - STAR1[0]) * SCALE))
    sky = np.median(brightness)
    assert brightness[y2, x2] > sky + 100 and brightness[int(round(cy + 7.3 * SCALE)), x2] < sky + 60
    assert (np.abs(rgb - NEIGHBOUR_RGB).sum(axis=2) < 10).any()


def test_cutout_of_another_star_is_centred_on_it(site):
    client, ids, _ = site
    brightness = png(client, f"/stars/3/frames/{ids[1]}/cutout.png").sum(axis=2)
    row, col = np.unravel_index(np.argmax(brightness), brightness.shape)
    centre = (brightness.shape[0] - 1) / 2
    assert abs(row - centre) <= SCALE * 1.5 and abs(col - centre) <= SCALE * 1.5


def test_frame_page_has_qc_cutout_and_neighbouring_frames(site):
    client, ids, order = site
    k = order.index(ids[1])
    html = client.get(f"/stars/1/frames/{ids[1]}").text
    assert f'src="/stars/1/frames/{ids[1]}/cutout.png"' in html
    assert "high_sky" in html and "light_002_V.fits" in html
    assert ("<dt>Time from</dt><dd>UT-OBS <small>(DATE-OBS had a -07:00 offset; used UT-OBS "
            "(they differ by 3600.0 s))</small></dd>") in html
    assert f'href="/stars/1/frames/{order[k - 1]}" rel="prev"' in html
    assert f'href="/stars/1/frames/{order[k + 1]}" rel="next"' in html
    first = client.get(f"/stars/1/frames/{order[0]}").text
    assert 'rel="prev"' not in first and "was not kept" in first  # no file for that frame


def test_a_click_on_a_point_finds_its_frame(site):
    client, ids, _ = site
    r = client.get("/stars/1/frame", params={"path": "20250301/light_002_V.fits"},
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/stars/1/frames/{ids[1]}"
    star = client.get("/stars/1").text
    assert 'data-frame-url="/stars/1/frame"' in star
    js = client.get("/static/lightcurve.js").text
    assert 'getAttribute("data-frame-url")' in js and "window.location.href" in js


@pytest.mark.parametrize("url", [
    "/stars/999/frames/{f}/cutout.png", "/stars/1/frames/999999/cutout.png",
    "/stars/4/frames/{f}/cutout.png",  # star 4 is never measured
    "/stars/x/frames/{f}/cutout.png", "/stars/1/frames/-1", "/stars/999/frames/{f}",
    "/stars/1/frames/{first}/cutout.png",  # calibrated frame not kept
    "/stars/1/frame?path=nope.fits",
])
def test_unknown_ids_are_404(site, url):
    client, ids, order = site
    r = client.get(url.format(f=ids[1], first=order[0]))
    assert r.status_code == 404


def test_read_only(site):
    client, ids, _ = site
    assert client.post(f"/stars/1/frames/{ids[1]}/cutout.png").status_code == 405
