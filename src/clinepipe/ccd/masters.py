"""``clinepipe masters``: masters from a folder of raw calibration frames, without a database.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from clinepipe.ccd.master_files import master_path, sha256_or_empty, write_master
from clinepipe.ccd.master_groups import (
    STACKERS,
    BuiltMaster,
    CalibrationGroup,
    build_master,
    group_calibration_frames,
    nearest_master,
)
from clinepipe.errors import BadInput, ClinepipeError
from clinepipe.ingest.frame_info import FrameInfo


def _expand(paths_or_dirs) -> list[Path]:
    from clinepipe.ingest.files import is_fits_name, iter_fits_files

    out: list[Path] = []
    for item in paths_or_dirs:
        p = Path(item)
        if p.is_dir():
            out.extend(path for path, _ in iter_fits_files(p))
        elif p.is_file() and is_fits_name(p.name):
            out.append(p)
        elif p.exists():
            out.append(p)  # let read_frame_info say what is wrong with it
        else:
            out.append(p)
    seen = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def make_masters(paths_or_dirs, output_dir: Path, *, mode: str = "default", camera=None,
                 site=None, reduction_cfg=None) -> dict:
    """The core of ``clinepipe masters``: masters from raw calibration files.

    Every file (folders are searched recursively) is read with
    :func:`clinepipe.ingest.read_frame_info`; calibration frames are grouped per binning (and
    filter for flats); all nights given are combined. Darks of one binning are split by
    CCD-temperature bucket (``camera.temp_tolerance``) and the most populous bucket is used
    (others rejected: ``CCD temperature -5 °C outside the group's -10 °C bucket``). Writes
    ``output_dir/binning{N}/bias_master.fits``, ``dark_master.fits``,
    ``flat_master_{FILTER}.fits``: bias first, then dark, then flats, each needing the
    previous ones of its binning.

    Returns
    -------
    dict
        ``written``: list of ``{"path", "kind", "binning", "filter", "n", "exptime"}``;
        ``rejected``: {file: reason} of frames left out of a master;
        ``failed``: {file or group label: reason} of files that could not be read and masters
        that could not be built; ``skipped``: light frames given (not used).
    """
    from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig
    from clinepipe.ingest.classify import read_frame_info

    camera = camera or CameraConfig()
    site = site or SiteConfig()
    red = reduction_cfg or ReductionConfig()
    if mode not in ("seed", "default"):
        raise ValueError(f"unknown reduction mode {mode!r} (seed or default)")
    output_dir = Path(output_dir)
    report: dict = {"written": [], "rejected": {}, "failed": {}, "skipped": []}
    infos: list[FrameInfo] = []
    for path in _expand(paths_or_dirs):
        try:
            info = read_frame_info(path, camera, site)
        except BadInput as exc:
            report["failed"][str(path)] = exc.reason
            continue
        if info.kind == "light":
            report["skipped"].append(str(path))
        else:
            infos.append(info)

    groups = _one_dark_group_per_binning(
        group_calibration_frames(infos, temp_tolerance=camera.temp_tolerance), report)
    pool = ThreadPoolExecutor(max_workers=1)  # the inputs' checksums (provenance), computed
    try:                                      # while the masters are built
        hashes = {i.path: pool.submit(sha256_or_empty, i.path)
                  for members in groups.values() for i in members}
        _build_groups(groups, output_dir, mode, camera, red, report, hashes)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report


def _build_groups(groups, output_dir: Path, mode: str, camera, red, report: dict, hashes) -> None:
    built: dict[tuple[str, int], list[BuiltMaster]] = defaultdict(list)
    for key, members in groups.items():
        label = f"{key.kind} binning {key.binning}" + (f" {key.filter}" if key.filter else "")
        paths = [i.path for i in members]
        jd = float(np.mean([i.jd_mid for i in members]))
        temp = _mean_or_none([i.ccd_temp for i in members])
        chosen = {need: nearest_master(built[(need, key.binning)], need, jd,
                                       red.max_master_age_days, ccd_temp=temp,
                                       temp_tolerance=camera.temp_tolerance)
                  for need in STACKERS[key.kind].needs}
        try:
            result = build_master(key.kind, paths, {k: m and m.result for k, m in chosen.items()},
                                  binning=key.binning, camera=camera, reduction=red, mode=mode)
        except ClinepipeError as exc:
            report["failed"][label] = exc.reason
            continue
        out = master_path(output_dir, key.kind, key.binning, key.filter)
        nights = sorted({i.night for i in members})
        built[(key.kind, key.binning)].append(
            BuiltMaster(len(report["written"]), jd, None, result.ccd_temp, result, out.name))
        provenance = {"night": nights[0] if len(nights) == 1 else ",".join(nights),
                      **{k: m.name for k, m in chosen.items() if m is not None}}
        checksums = {p: hashes[p].result() for p in [*result.used, *result.rejected]
                     if p in hashes}
        write_master(out, result, kind=key.kind, mode=mode, binning=key.binning,
                     filter=key.filter, provenance=provenance, checksums=checksums)
        report["rejected"].update({str(p): r for p, r in result.rejected.items()})
        report["written"].append({"path": str(out), "kind": key.kind, "binning": key.binning,
                                  "filter": key.filter, "n": result.n, "exptime": result.exptime})


def _mean_or_none(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _one_dark_group_per_binning(groups: dict, report: dict) -> dict:
    """``clinepipe masters`` writes one dark per binning: the most populous CCD-temperature
    bucket of each binning is kept, the darks of the others are rejected by name."""
    darks: dict[int, list[CalibrationGroup]] = defaultdict(list)
    for key in groups:
        if key.kind == "dark":
            darks[key.binning].append(key)
    for keys in darks.values():
        best = max(keys, key=lambda k: (len(groups[k]), k.temp is not None, -(k.temp or 0)))
        where = "unknown" if best.temp is None else f"{best.temp:g} °C"
        for key in keys:
            if key == best:
                continue
            for info in groups.pop(key):
                temp = "unknown" if info.ccd_temp is None else f"{info.ccd_temp:.1f} °C"
                report["rejected"][str(info.path)] = (
                    f"CCD temperature {temp} outside the group's {where} bucket")
    return groups
