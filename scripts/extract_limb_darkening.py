"""Extract the Magic et al. (2015) quadratic limb-darkening table that clinepipe ships.

The table comes from the ``meidem`` wheel (PyPI, MIT licence), which bundles the VizieR
table J/A+A/573/A90 as ``meidem/tables/magic2013/table1.parquet``. meidem itself needs
pandas and pyarrow (a 20 MB wheel), too heavy for a nightly pipeline, so the few columns we
use are copied once into ``src/clinepipe/transits/data/magic2015_quadratic.csv``.

Run it (pyarrow only needed here, e.g. in a throwaway venv)::

    pip download meidem==2.0.0 --no-deps -d /tmp/meidem
    python -m venv /tmp/ldvenv && /tmp/ldvenv/bin/pip install pyarrow
    /tmp/ldvenv/bin/python scripts/extract_limb_darkening.py \
        /tmp/meidem/meidem-2.0.0-py3-none-any.whl \
        src/clinepipe/transits/data/magic2015_quadratic.csv

The wheel's table has one model row with Teff = 0 (logg 5.0, [Fe/H] -3.0, a missing value
in the source): it is left out, since its coefficients cannot be placed on the grid.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile

TABLE_MEMBER = "meidem/tables/magic2013/table1.parquet"
#: (meidem System, Band) -> clinepipe passband name (transits.limbdark.PASSBANDS)
BANDS = {("johnson", "u"): "U", ("johnson", "b"): "B", ("johnson", "v"): "V",
         ("johnson", "r"): "R", ("johnson", "i"): "I",
         ("sdss", "u"): "u", ("sdss", "g"): "g", ("sdss", "r"): "r", ("sdss", "i"): "i",
         ("sdss", "z"): "z"}
HEADER = """\
# Quadratic limb-darkening coefficients I(mu)/I(1) = 1 - u1 (1 - mu) - u2 (1 - mu)^2
# from 3D radiation-hydrodynamic STAGGER-grid model atmospheres:
#   Magic, Z., Chiavassa, A., Collet, R. & Asplund, M. 2015, A&A 573, A90
#   (doi:10.1051/0004-6361/201423804; CDS/VizieR J/A+A/573/A90), columns a, b.
# Copied from the meidem {version} wheel (https://github.com/icaromeidem/meidem, MIT licence,
# Copyright (c) 2026 Icaro Meidem; file {member}) by scripts/extract_limb_darkening.py.
# Johnson-Cousins U B V R I and SDSS u g r i z only; teff K, logg cgs dex, feh dex.
# Left out: the source row with teff = 0 (logg 5.0, feh -3.0).
#
# meidem's licence, which asks to be kept with substantial portions of it:
{licence}"""


def read_rows(wheel: str):
    """Rows (band, teff, logg, feh, u1, u2) of the wheel's Magic table, sorted; the wheel's
    version and licence text."""
    import pyarrow.parquet as pq

    with zipfile.ZipFile(wheel) as zf:
        table = pq.read_table(io.BytesIO(zf.read(TABLE_MEMBER))).to_pydict()
        licence = next((zf.read(n).decode("utf-8") for n in zf.namelist()
                        if n.endswith(".dist-info/licenses/LICENSE")), "")
        version = next((n.split("/")[0].removesuffix(".dist-info").split("-")[1]
                        for n in zf.namelist() if n.endswith(".dist-info/WHEEL")), "?")
    rows = []
    for system, band, teff, logg, feh, a, b in zip(table["System"], table["Band"], table["Teff"],
                                                   table["logg"], table["[Fe/H]"], table["a"],
                                                   table["b"]):
        key = (str(system or "").strip().lower(), str(band or "").strip().lower())
        if key not in BANDS or not teff or teff <= 0:
            continue
        rows.append((BANDS[key], float(teff), float(logg), float(feh), float(a), float(b)))
    order = list(BANDS.values())
    rows.sort(key=lambda r: (order.index(r[0]), r[3], r[2], r[1]))
    return rows, version, licence


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="meidem-*.whl")
    parser.add_argument("output", help="CSV to write")
    args = parser.parse_args(argv)
    rows, version, licence = read_rows(args.wheel)
    if "MIT License" not in licence:
        raise SystemExit(f"{args.wheel}: no MIT licence in the wheel; check its terms first.")
    with open(args.output, "w", newline="", encoding="utf-8") as f:
        quoted = "".join(f"#   {line}".rstrip() + "\n" for line in licence.strip().splitlines())
        f.write(HEADER.format(version=version, member=TABLE_MEMBER, licence=quoted))
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["band", "teff", "logg", "feh", "u1", "u2"])
        for band, teff, logg, feh, u1, u2 in rows:
            # the source gives Teff to 0.01 K and the coefficients to 5 decimals
            writer.writerow([band, f"{teff:.2f}", f"{logg:.2f}", f"{feh:.1f}", f"{u1:.5f}",
                             f"{u2:.5f}"])
    print(f"{len(rows)} rows, {len({r[0] for r in rows})} bands -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
