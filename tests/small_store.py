"""A small hand-made database for the store, export and command-line tests."""

def populate_small_store(engine) -> dict:
    """A small hand-made database for the store/export tests; returns the ids it made.

    Stars: 1 = known variable "V0001 Tst" (catalog C1), 2 = check star (catalog C2),
    3 = no catalog id, 4 = never measured. Lights: f1 V, f2 R, f3 V (2.2 h later), f4 Red (next
    night), f5 V without zero point; plus one bias frame. Star 3 is flagged on f1.
    """
    import json
    from datetime import datetime

    from clinepipe.store.db import session_scope
    from clinepipe.store.measurement_rows import insert_measurements
    from clinepipe.store.models import CatalogMatch, Frame, Run, Star, ZeroPoint

    now = datetime(2024, 3, 1, 12, 0, 0)
    ids: dict = {}
    with session_scope(engine) as s:
        run = Run(started_at=now, software_version="test", status="finished")
        s.add(run)
        s.flush()
        stars = [Star(ra=150.0, dec=20.0, catalog_id="C1", name="V0001 Tst", n_measurements=0),
                 Star(ra=150.01, dec=20.01, catalog_id="C2", n_measurements=0),
                 Star(ra=150.02, dec=19.99, n_measurements=0),
                 Star(ra=151.0, dec=21.0, n_measurements=0)]
        s.add_all(stars)
        s.flush()
        ids["stars"] = [st.id for st in stars]
        s.add_all([
            CatalogMatch(star_id=stars[0].id, catalog="file", catalog_id="C1", ra=150.0,
                         dec=20.0, separation=0.1,
                         mags=json.dumps({"V": [12.1, 0.02], "R": [11.8, 0.03], "B": [12.9, None]})),
            CatalogMatch(star_id=stars[1].id, catalog="file", catalog_id="C2", ra=150.01,
                         dec=20.01, separation=0.2, mags=json.dumps({"V": [11.0, 0.01]})),
        ])
        spec = [("night1/lights/v_001.fits", "V", 2460000.60),
                ("night1/lights/r_001.fits", "R", 2460000.61),
                ("night1/lights/v_002.fits", "V", 2460000.70),
                ("night2/lights/red_001.fits", "Red", 2460001.60),
                ("night2/lights/v_003.fits", "V", 2460001.65)]
        frames = [Frame(raw_path=p, kind="light", filter=f, jd_mid=jd, exptime=60.0,
                        airmass=1.2 + 0.01 * i, state="calibrated", night="20230224",
                        run_id=run.id) for i, (p, f, jd) in enumerate(spec)]
        frames.append(Frame(raw_path="night1/cal/bias_001.fits", kind="bias", state="used",
                            run_id=run.id))
        s.add_all(frames)
        s.flush()
        ids["frames"] = [fr.id for fr in frames]
        for i, fr in enumerate(frames[:4]):
            s.add(ZeroPoint(frame_id=fr.id, filter=fr.filter, catalog_band=fr.filter[0],
                            value=20.0 + 0.1 * i, error=0.01 + 0.001 * i, n_used=10,
                            n_candidates=12, scatter=0.02))
        rows = []
        for i, fr in enumerate(frames[:5]):
            for j, st in enumerate(stars[:3]):
                inst = -8.0 - j + 0.01 * i
                zp = 20.0 + 0.1 * i if i < 4 else None
                rows.append({
                    "frame_id": fr.id, "star_id": st.id, "filter": fr.filter,
                    "jd_mid": fr.jd_mid, "bjd_tdb": fr.jd_mid + 0.004,
                    "x": 100.0 + j, "y": 200.0 + j, "ra": st.ra + 1e-5 * i, "dec": st.dec,
                    "flux": 1000.0, "flux_err": 10.0, "background": 50.0,
                    "inst_mag": inst, "inst_mag_err": 0.01,
                    "mag": inst + zp if zp is not None else None,
                    "mag_err": 0.015 if zp is not None else None,
                    "fwhm": 3.0, "airmass": (1.25 + 0.01 * i) if j != 2 else None,
                    "flags": 1 if (i == 0 and j == 2) else 0, "in_ensemble": j == 1,
                })
        insert_measurements(s, rows)
    return ids
