"""The commented ``clinepipe.toml`` that ``clinepipe init`` writes.
"""

from __future__ import annotations


def default_config_text(*, latitude: float | None = None, longitude: float | None = None,
                        elevation: float | None = None, name: str | None = None) -> str:
    """The commented ``clinepipe.toml`` that ``clinepipe init`` writes: the site keys given
    here are written as values, the others as placeholders the user must fill in (degrees
    north, degrees east, metres)."""
    import json

    lines = [f"name = {json.dumps(name)}".ljust(24) + "# shown on the dashboard and in reports" if name
             else '# name = ""             # shown on the dashboard, e.g. "Backyard Observatory"']
    for key, value, hint in (("latitude", latitude, "degrees north (south negative), e.g. 52.2053"),
                             ("longitude", longitude, "degrees east (west negative), e.g. 0.1218"),
                             ("elevation", elevation, "metres above sea level, e.g. 20")):
        if value is None:
            lines.append(f"# {key} =".ljust(24) + f"# FILL IN: {hint}")
        else:
            lines.append(f"{key} = {float(value)!r}")
    site = "\n".join(lines) + "\n"
    return _DEFAULT_CONFIG_TEMPLATE.replace("{site}", site)


_DEFAULT_CONFIG_TEMPLATE = '''\
# clinepipe configuration. Relative paths are relative to this file.
# Every key but [site] latitude, longitude and elevation is optional; the values shown are
# the defaults.

[paths]
incoming = "incoming"   # camera drop folder, any depth; clinepipe only reads it
archive  = "archive"    # clinepipe's own store: copies, masters, calibrated frames, logs
settle_seconds = 5.0    # a file still being written (changed more recently) waits for the next run

[database]
url = "sqlite:///clinepipe.db"   # or postgresql+psycopg://user@host:port/db for a shared server

[site]                  # YOUR SITE: `clinepipe run` refuses to start until these are set
{site}telescope = ""          # this telescope's name when several share one database, e.g. "scope-a"

[camera]
gain = 0.4              # e-/ADU, when EGAIN is absent from the header
read_noise = 9.3        # e-
max_ccd_temp = -3.0     # lights/darks warmer than this (deg C) are rejected with a reason
saturation = 65535      # raw ADU at which a pixel counts as saturated

[reduction]
mode = "default"        # or "seed": the 2018 formulas
min_frames = 3          # fewest calibration frames for a master
max_master_age_days = 30  # a light uses the master nearest in time within this many days
overscan = false        # subtract the overscan from BIASSEC/TRIMSEC (default mode only)
cosmic_rays = false     # clean cosmic rays with astroscrappy (default mode only)
without_masters = "wait"  # or "measure": reduce a light with the masters that exist

[photometry]
aperture = 5.0          # radius in binned pixels; 0 = 1.5 x the frame's measured FWHM
sources = "auto"        # "auto": the .SRC list when present, else own detection; "src"; "detect"
detect_threshold = 3.0  # detection threshold in sigma of the background
blend_fraction = 0.01   # flag "blended" when neighbours add more light to the aperture than
                        # this fraction of the star's flux (or its 1-sigma error)

[archive]
keep_calibrated = "image"  # "image": calibrated image + mask, compressed losslessly (the
                           # uncertainty is recomputed when read); "all": also the uncertainty
                           # plane; "none": no calibrated files

[astrometry]
solve = false           # plate-solve lights without WCS with astrometry.net (`make system-deps`
                        # installs it); small fields solve with the catalog index below
scale_low = 0.0         # arcsec/pixel hints for the solver; 0 = from the header / blind
scale_high = 0.0
timeout = 120           # seconds per frame
catalog_index = true    # build index files from the [catalog] stars around each field (cached
                        # in archive/astrometry-index/): solves fields too small for Tycho-2
index_margin = 0.25     # degrees beyond the field's half-diagonal in that index (pointing error)
system_index = true     # also use the system's index files (Tycho-2: fields wider than ~30')
solve_sources = 60      # brightest detections given to the solver (more: slower failures)

[catalog]
source = "file"         # "file", "apass", "ucac4", "gaia"
path = "catalog.csv"    # for source = "file": id,ra,dec,<band>...,e_<band>...
match_radius = 2.0      # arcsec
color_term = true       # fit and report (not apply) a colour term per night and filter

[catalog.filters]       # FILTER header value -> catalog column
V = "V"
R = "R"
B = "B"

[headers]               # files from any acquisition program (see `clinepipe inspect DIR`)
profile = "auto"        # or a named profile: "nina", "maxim", "indi", "lco", "iraf", "seestar"...
default_kind = ""       # "light", "bias", "dark" or "flat" for files with no frame-type keyword
default_filter = "C"    # the filter of lights and flats with no filter keyword

[headers.kind_by_path]  # glob on the path relative to incoming -> kind; first match wins and
                        # overrides the header, e.g. "*/Bias/*" = "bias", "*flat*" = "flat"

[headers.filter_aliases]  # the camera's filter name -> the name used everywhere else,
                          # e.g. "Clear" = "CV", "Lum" = "L"

[stars]
match_radius = 2.0      # arcsec: a detection this close to a known star is the same star

[execution]
scheduler = "local"     # worker processes of the run; "serial" (one process) or "dask"
workers = 0             # 0 = one per CPU
address = ""            # an existing Dask scheduler address; empty = a local cluster

[qc]                    # flags relative to the night; flagged frames are still measured
clouds_mag = 0.25       # zero point this far below the night's extinction line -> clouds
max_elongation = 1.5    # -> trailed
focus_factor = 1.6      # FWHM above this x the night's median -> focus
sky_factor = 2.0        # sky above this x the night's median -> bright-sky
few_stars_fraction = 0.25   # fewer stars than this x the night's median -> few-stars
max_astrometric_rms = 1.0   # arcsec -> astrometry
exclude_from_variability = ["clouds", "trailed"]

[variables]
suspect_chi2 = 10.0     # a catalog star varying more than this (reduced chi2 within a night) is a
                        # "suspected new variable" and leaves the ensemble; 0 = never
suspect_min_points = 10 # fewest points per night and filter for that test

[aavso]
obscode = ""            # your AAVSO observer code, for `clinepipe export --format aavso`
targets = []            # names or "RA DEC" of the stars you report: each night `run` writes
                        # archive/aavso/<night>/<target>.txt, and the morning report plots them
# [aavso.sequences]     # a target's AAVSO comparison sequence, saved from VSP (JSON or CSV):
# "V1234 Her" = "X12345ABC.json"   # its comparison and check stars, CNAME/KNAME and CHART

[transits]
path = ""               # e.g. "transits.csv": planets to fit after each run (columns pl_name,ra,
                        # dec,pl_orbper,pl_tranmid,pl_trandur[,pl_ratror,pl_ratdor,pl_orbincl,...]
                        # as the NASA Exoplanet Archive names them); "" = none

[web]
host = "127.0.0.1"
port = 8765

# [transform]           # AAVSO transformation coefficients, from `clinepipe transform --night
# Tb_bv = 0.0           # YYYYMMDD` on a standard field; with them, nights observed in two or
# Tv_bv = 0.0           # more filters get transformed magnitudes (AAVSO files: TRANS=YES).
# Tr_vr = 0.0           # Also Tv_vr, Tv_vi, Tr_ri, Ti_vi, Ti_ri and the colour coefficients
# Tbv = 1.0             # Tbv, Tvr, Tvi, Tri. Absent: not transformed (TRANS=NO).
# Tvr = 1.0
# Tv_bv_sigma = 0.0     # each coefficient's 1-sigma error (<name>_sigma), propagated
'''


#: what `clinepipe init` writes without site options (the site keys are placeholders)
DEFAULT_CONFIG = default_config_text()
