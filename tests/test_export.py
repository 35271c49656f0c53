"""``clinepipe export`` formats on a small hand-made database (conftest ``small_store``), on
SQLite and PostgreSQL with identical output."""

from __future__ import annotations

import csv
import math

import pytest
from sqlalchemy import update

from clinepipe import __version__
from clinepipe.errors import BadInput, ClinepipeError, UsageError
from clinepipe.products.aavso_format import validate_extended
from clinepipe.products.export import (
    AAVSO_FIELDS,
    CSV_COLUMNS,
    SOURCES_CSV_COLUMNS,
    aavso_filter,
    export_aavso,
    export_csv,
    export_sources_csv,
    export_votable,
    jd_to_iso,
)
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.legacy import import_sources_csv
from clinepipe.store.models import Frame


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# ----------------------------------------------------------------------------- CSV

def test_csv_columns_rows_order_and_no_duplicates(small_store, tmp_path):
    engine, ids = small_store
    out = tmp_path / "out" / "all.csv"
    n = export_csv(engine, out)
    rows = _read_csv(out)
    assert rows[0] == list(CSV_COLUMNS) == [
        "star_id", "ra", "dec", "filter", "jd_mid", "bjd_tdb", "mag", "mag_err", "inst_mag",
        "inst_mag_err", "zero_point", "airmass", "exptime", "frame", "flags"]
    data = rows[1:]
    assert n == len(data) == 15  # 3 stars x 5 lights
    assert all(len(r) == 15 for r in data)
    # the one saturated measurement (star 3 on the first light) says so; the others are clean
    assert sorted(r[14] for r in data) == ["0"] * 14 + ["1"]
    keys = [(int(r[0]), r[13]) for r in data]
    assert len(set(keys)) == len(keys)  # one row per star per frame
    assert [(int(r[0]), float(r[4])) for r in data] == sorted((int(r[0]), float(r[4])) for r in data)
    first = dict(zip(CSV_COLUMNS, data[0]))
    assert first["star_id"] == str(ids["stars"][0]) and first["frame"] == "night1/lights/v_001.fits"
    assert float(first["jd_mid"]) == 2460000.60 and float(first["mag"]) == 12.0
    assert first["exptime"] == "60.0" and first["zero_point"] == "20.0"
    last_of_star1 = dict(zip(CSV_COLUMNS, data[4]))
    assert last_of_star1["mag"] == "" and last_of_star1["zero_point"] == ""  # no zero point
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_csv_star_and_filter_selection(small_store, tmp_path):
    engine, ids = small_store
    star1, star2 = ids["stars"][:2]
    assert export_csv(engine, tmp_path / "a.csv", star_ids=[star2], filter="V") == 3
    rows = _read_csv(tmp_path / "a.csv")[1:]
    assert {r[0] for r in rows} == {str(star2)} and {r[3] for r in rows} == {"V"}
    assert export_csv(engine, tmp_path / "b.csv", star_ids=[star1, star2], filter="Red") == 2
    assert export_csv(engine, tmp_path / "c.csv", star_ids=[ids["stars"][3]]) == 0
    assert _read_csv(tmp_path / "c.csv") == [list(CSV_COLUMNS)]
    assert export_csv(engine, tmp_path / "d.csv", star_ids=[]) == 0


# ----------------------------------------------------------------------------- AAVSO

def _aavso(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    data = [ln.split(",") for ln in lines if not ln.startswith("#")]
    return header, data


def test_aavso_extended_format(small_store, tmp_path):
    engine, ids = small_store
    star1, star2 = ids["stars"][:2]
    out = tmp_path / "report.txt"
    n = export_aavso(engine, out, obscode="TST01", star_ids=[star1], check_star_id=star2)
    header, data = _aavso(out)
    assert header[:6] == ["#TYPE=EXTENDED", "#OBSCODE=TST01", f"#SOFTWARE=clinepipe {__version__}",
                          "#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD"]
    assert n == len(data) == 4  # the frame without zero point has no calibrated magnitude
    assert len(AAVSO_FIELDS) == 15 and all(len(row) == 15 for row in data)
    rec = [dict(zip(AAVSO_FIELDS, row)) for row in data]
    assert [r["STARID"] for r in rec] == ["V0001 Tst"] * 4
    assert [r["DATE"] for r in rec] == ["2460000.60000", "2460000.61000", "2460000.70000",
                                        "2460001.60000"]
    assert all(2400000 < float(r["DATE"]) < 2500000 for r in rec)
    assert [r["FILTER"] for r in rec] == ["V", "R", "V", "TR"]
    assert [r["MAGNITUDE"] for r in rec] == ["12.000", "12.110", "12.220", "12.330"]
    assert {(r["TRANS"], r["MTYPE"], r["CNAME"], r["CMAG"], r["CHART"]) for r in rec} == {
        ("NO", "STD", "ENSEMBLE", "na", "na")}
    assert {r["KNAME"] for r in rec} == {"C2"}
    assert rec[0]["KMAG"] == "11.000" and rec[1]["KMAG"] == "11.110"
    assert [r["GROUP"] for r in rec] == ["1", "1", "2", "3"]
    assert rec[0]["AMASS"] == "1.250" and rec[0]["MAGERR"] == "0.015"
    # NOTES for AAVSO's Transform Applier: target -8.00, ensemble (star 2) -9.00 instrumental,
    # zero point 20.0; the check star (star 2, catalog V 11.0) has no R catalog magnitude
    assert rec[0]["NOTES"] == ("VMAGINS=-8.000|CMAGINS=-9.000|KMAGINS=-9.000|CREFMAG=11.000|"
                               "KREFMAG=11.000|ZPERR=0.010")
    assert rec[1]["NOTES"] == "VMAGINS=-7.990|CMAGINS=-8.990|KMAGINS=-8.990|CREFMAG=11.110|ZPERR=0.011"
    assert rec[3]["NOTES"].endswith("ZPERR=0.013")
    for r in rec:  # the Transform Applier's identity: MAG = VMAGINS - CMAGINS + CREFMAG
        notes = dict(part.split("=") for part in r["NOTES"].split("|"))
        assert float(notes["VMAGINS"]) - float(notes["CMAGINS"]) + float(notes["CREFMAG"]) == \
            pytest.approx(float(r["MAGNITUDE"]), abs=0.0015)
    assert validate_extended(out.read_text()) == []
    assert n.left_out == {"without a calibrated magnitude (no zero point on their frame)": 1}


def test_aavso_star_ids_without_name_and_without_check_star(small_store, tmp_path):
    engine, ids = small_store
    star2, star3 = ids["stars"][1:3]
    out = tmp_path / "r.txt"
    export_aavso(engine, out, obscode="TST01", star_ids=[star3, star2], filter="V",
                 software="my, software #2")
    header, data = _aavso(out)
    assert validate_extended(out.read_text()) == []
    assert "#SOFTWARE=my software 2" in header
    # star 3 is flagged on the first V frame; star 2 has a catalog id, star 3 only an id
    labels = [(row[0], row[1]) for row in data]
    assert labels == [("C2", "2460000.60000"), ("C2", "2460000.70000"),
                      (f"clinepipe-{star3}", "2460000.70000")]
    assert all(row[9] == "na" and row[10] == "na" for row in data)


def test_aavso_leaves_out_filters_without_code_and_counts_them(small_store, tmp_path):
    engine, ids = small_store
    from clinepipe.store.models import Measurement

    with session_scope(engine) as s:
        s.execute(update(Frame).where(Frame.id == ids["frames"][3]).values(filter="OIII"))
        s.execute(update(Measurement).where(Measurement.frame_id == ids["frames"][3])
                  .values(filter="OIII"))
    out = tmp_path / "r.txt"
    n = export_aavso(engine, out, obscode="TST01", star_ids=[ids["stars"][0]])
    assert n == 3 and validate_extended(out.read_text()) == []
    assert n.left_out == {"in filter 'OIII', which has no AAVSO code": 1,
                          "without a calibrated magnitude (no zero point on their frame)": 1}
    out.write_text("previous report\n")
    with pytest.raises(UsageError, match="'Q'"):
        export_aavso(engine, out, obscode="TST01", star_ids=[ids["stars"][0]], filter="Q")
    assert out.read_text() == "previous report\n"  # untouched
    assert export_aavso(engine, out, obscode="TST01", star_ids=[ids["stars"][0]],
                        filter="V") == 2
    assert [aavso_filter(f) for f in ("V", "b", "Rc", "Red", "Green", "Blue", "Lum", "r'",
                                      "Clear")] == ["V", "B", "R", "TR", "TG", "TB", "CV", "SR",
                                                    "CV"]


@pytest.mark.parametrize("obscode", ["", "  ", None, "N/A", "XXX", "na"])
def test_aavso_without_obscode_writes_no_file(small_store, tmp_path, obscode):
    engine, ids = small_store
    out = tmp_path / "r.txt"
    with pytest.raises(BadInput, match=r"no AAVSO observer code: .*\[aavso\] obscode"):
        export_aavso(engine, out, obscode=obscode, star_ids=[ids["stars"][0]])
    assert not out.exists() and not list(tmp_path.glob("*.txt*")) and not list(tmp_path.glob(".r.txt*"))


def test_aavso_drops_magerr_of_one_mag_and_counts_it(small_store, tmp_path):
    engine, ids = small_store
    from clinepipe.store.models import Measurement

    with session_scope(engine) as s:  # 0.9996 would be written "1.000": dropped as well
        s.execute(update(Measurement).where(Measurement.frame_id == ids["frames"][0])
                  .values(mag_err=1.4))
        s.execute(update(Measurement).where(Measurement.frame_id == ids["frames"][1])
                  .values(mag_err=0.9996))
    out = tmp_path / "r.txt"
    n = export_aavso(engine, out, obscode="TST01", star_ids=[ids["stars"][0]])
    assert n == 2 and validate_extended(out.read_text()) == []
    assert n.left_out["with MAGERR >= 1 mag (AAVSO takes errors below 1 mag)"] == 2
    assert [ln.split(",")[1] for ln in out.read_text().splitlines()
            if not ln.startswith("#")] == ["2460000.70000", "2460001.60000"]


def test_aavso_never_truncates_a_name(small_store, tmp_path):
    engine, ids = small_store
    from clinepipe.store.models import Star

    long_name = "V1234567 Very Long Constellation"  # 32 characters: AAVSO takes 30
    with session_scope(engine) as s:
        s.execute(update(Star).where(Star.id == ids["stars"][0]).values(name=long_name))
    out = tmp_path / "r.txt"
    with pytest.raises(ClinepipeError, match="longer than the 30 characters"):
        export_aavso(engine, out, obscode="TST01", star_ids=[ids["stars"][0]])
    assert not out.exists()


def test_aavso_all_left_out_is_an_error_with_the_reason(small_store, tmp_path):
    engine, ids = small_store
    from clinepipe.store.models import Measurement

    with session_scope(engine) as s:  # issue 19 item 2: every point flagged blended
        s.execute(update(Measurement).where(Measurement.star_id == ids["stars"][0])
                  .values(flags=8))
    out = tmp_path / "r.txt"
    with pytest.raises(ClinepipeError, match=r"all 5 measurement\(s\) were left out: 5 flagged "
                                             r"blended; nothing written"):
        export_aavso(engine, out, obscode="TST01", star_ids=[ids["stars"][0]])
    assert not out.exists()


# ----------------------------------------------------------------------------- sources.csv

def test_sources_csv_columns_and_semantics(small_store, tmp_path):
    engine, ids = small_store
    star1, star2, star3 = ids["stars"][:3]
    out = tmp_path / "sources.csv"
    n = export_sources_csv(engine, out)
    rows = _read_csv(out)
    assert rows[0] == list(SOURCES_CSV_COLUMNS)
    data = [dict(zip(SOURCES_CSV_COLUMNS, r)) for r in rows[1:]]
    assert n == len(data) == 12  # 3 stars x 4 frames in V or R (the Red frame is left out)
    assert all(len(r) == 15 for r in rows)
    r0 = data[0]
    assert r0["id"] == "C1" and r0["RA_C"] == "150.0" and r0["DEC_C"] == "20.0"
    assert r0["RA_M"] == "150.0" and r0["DIF"] == "0.0"
    assert (r0["MAG_R"], r0["MAG_V"], r0["MAG_B"]) == ("11.8", "12.1", "12.9")
    assert (r0["CMAG_R"], r0["CMAG_V"], r0["CMAG_B"]) == ("", "12.0", "")
    assert r0["MAG_err"] == "0.015"
    assert r0["DATETIME"] == jd_to_iso(2460000.60) == "2023-02-25T02:24:00.000"
    assert r0["IMGNAME"] == "v_001.fits"
    r1 = data[1]
    assert float(r1["CMAG_R"]) == pytest.approx(12.11) and r1["CMAG_V"] == ""
    assert r1["IMGNAME"] == "r_001.fits"
    assert float(r1["DIF"]) == pytest.approx(1e-5 * math.cos(math.radians(20)) * 3600, rel=1e-3)
    star3_rows = [r for r in data if r["id"] == f"clinepipe-{star3}"]
    assert len(star3_rows) == 4 and star3_rows[0]["RA_C"] == "" and star3_rows[0]["DIF"] == ""
    assert n.left_out == {"in filter 'Red' (the format has columns for R, V and B only)": 3}
    assert export_sources_csv(engine, tmp_path / "v.csv", star_ids=[star2], filter="V") == 3
    with pytest.raises(UsageError):
        export_sources_csv(engine, tmp_path / "x.csv", filter="Red")


def test_sources_csv_round_trips_through_the_legacy_import(small_store, tmp_path):
    engine, _ = small_store
    out = tmp_path / "sources.csv"
    n = export_sources_csv(engine, out)
    fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    summary = import_sources_csv(fresh, out)
    # the frame without zero point has no CMAG at all, so its filter cannot be told: 3 bad rows
    assert (summary.rows_read, summary.rows_imported, summary.bad_lines) == (n, n - 3, 3)
    assert summary.stars_created == 3 and summary.frames_created == 3
    again = export_sources_csv(fresh, tmp_path / "again.csv")
    assert again == n - 3
    fresh.dispose()


# ----------------------------------------------------------------------------- VOTable

def test_votable_parses_back_with_units(small_store, tmp_path):
    from astropy.table import Table

    engine, ids = small_store
    out = tmp_path / "m.vot"
    n = export_votable(engine, out)
    table = Table.read(out, format="votable")
    assert n == len(table) == 15
    assert table.colnames == list(CSV_COLUMNS)
    assert str(table["ra"].unit) == "deg" and str(table["jd_mid"].unit) == "d"
    assert str(table["mag"].unit) == "mag" and str(table["exptime"].unit) == "s"
    assert table["star_id"][0] == ids["stars"][0] and table["frame"][0] == "night1/lights/v_001.fits"
    assert table["mag"][0] == pytest.approx(12.0)
    assert bool(table["mag"].mask[4]) and bool(table["zero_point"].mask[4])
    assert export_votable(engine, tmp_path / "one.vot", star_ids=[ids["stars"][1]],
                          filter="R") == 1
    assert len(Table.read(tmp_path / "one.vot", format="votable")) == 1


@pytest.mark.postgres
def test_exports_identical_on_both_backends(new_database_url, tmp_path):
    """Every text export of the same database is byte-identical on SQLite and PostgreSQL."""
    from small_store import populate_small_store

    outputs = []
    for kind in ("sqlite", "postgres"):
        engine = open_database(new_database_url(kind))
        ids = populate_small_store(engine)
        folder = tmp_path / kind
        export_csv(engine, folder / "a.csv")
        export_aavso(engine, folder / "a.txt", obscode="TST01", star_ids=ids["stars"][:3],
                     check_star_id=ids["stars"][1])
        export_sources_csv(engine, folder / "s.csv")
        engine.dispose()
        outputs.append({name: (folder / name).read_bytes() for name in ("a.csv", "a.txt", "s.csv")})
    assert outputs[0] == outputs[1]
