"""Header cards and file names of each acquisition program, modelled on the real headers in
``shared/headers/`` (file named in each function's docstring). See :mod:`.styles` for the
conventions; every function takes a :class:`.styles.Frame`.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from . import ephemeris as eph
from .styles import Frame, iso, jnow, sexa, sub_ms
from .writers import card, fcard, scard


def _r(x: float) -> str:
    return repr(float(x))


# --- TheSkyX is the scene's own header (styles.frame_cards); MaxIm DL ------------------------

MAXIM_KIND = {"light": "Light Frame", "bias": "Bias Frame", "dark": "Dark Frame",
              "flat": "Flat Frame"}


def _maxim_common(fr: Frame, date_cards: list) -> list:
    """MaxIm DL's SBFITSEXT block (``MaxImDL_light_1/4``, ``iTelescope_MaxImDL_light_2``)."""
    sp = fr.spec

    def m(key, value, comment):
        return fcard(key, value, "maxim", comment, sep=" /")

    cards = date_cards + [
        m("EXPTIME", fr.plan.exptime, "Exposure time in seconds"),
        m("EXPOSURE", fr.plan.exptime, "Exposure time in seconds"),
        m("SET-TEMP", sp.set_temp, "CCD temperature setpoint in C"),
        m("CCD-TEMP", fr.plan.ccd_temp, "CCD temperature at start of exposure in C"),
        m("XPIXSZ", fr.pix_um, "Pixel Width in microns (after binning)"),
        m("YPIXSZ", fr.pix_um, "Pixel Height in microns (after binning)"),
        card("XBINNING", str(fr.b), "Binning factor in width", sep=" /"),
        card("YBINNING", str(fr.b), "Binning factor in height", sep=" /"),
        card("XORGSUBF", "0", "Subframe X position in binned pixels", sep=" /"),
        card("YORGSUBF", "0", "Subframe Y position in binned pixels", sep=" /"),
        scard("READOUTM", "Monochrome", "       Readout mode of image", pad=0, width=0,
              sep=" /"),
    ]
    if fr.kind in ("light", "flat"):
        cards.append(scard("FILTER", fr.filter, "         Filter used when taking image",
                           width=0, sep=" /"))
    cards.append(scard("IMAGETYP", MAXIM_KIND[fr.kind], "      Type of image", pad=0, width=0,
                       sep=" /"))
    if fr.light:
        ra, dec = fr.radec
        cards += [scard("OBJECT", fr.object, width=0, sep=""),
                  scard("OBJCTRA", sexa(ra / 15.0, 0), "         Nominal Right Ascension of "
                        "center of image", pad=0, width=0, sep=" /"),
                  scard("OBJCTDEC", sexa(dec, 0, sign=True), "        Nominal Declination of "
                        "center of image", pad=0, width=0, sep=" /")]
    cards += [
        scard("SITELAT", sexa(fr.spec.latitude, 0), "         Latitude of the imaging location",
              pad=0, width=0, sep=" /"),
        scard("SITELONG", sexa(fr.spec.longitude, 0), "        Longitude of the imaging "
              "location", pad=0, width=0, sep=" /"),
        m("JD", fr.plan.jd_start, "Julian Date at start of exposure"),
        m("FOCALLEN", fr.focal_mm, "Focal length of telescope in mm"),
        m("EGAIN", sp.gain, "Electronic gain in e-/ADU"),
    ]
    return cards


def maxim_old(fr: Frame) -> list:
    """MaxIm DL 4/5 with the pre-2000 FITS time form: DATE-OBS the UTC date only, TIME-OBS
    and UT its time in whole seconds (the ``[old format]`` cards of ``MaxImDL_light_1``)."""
    date = iso(fr.start, 0)
    cards = _maxim_common(fr, [
        scard("DATE-OBS", date[:10], "[old format] UTC date of exposure start", width=20),
        scard("TIME-OBS", date[11:19], "[old format] UTC time of exposure start", width=20),
        scard("UT", date[11:19], "[old format] UTC time of exposure start", width=20)])
    return cards + [scard("SWCREATE", "MaxIm DL Version 4.62", "Name of software that "
                          "created the image", pad=0, width=0, sep=" /")] + fr.wcs_cards()


def maxim(fr: Frame) -> list:
    """MaxIm DL 6.27 (``iTelescope_MaxImDL_light_2``): ISO DATE-OBS in centiseconds, JD,
    ROWORDER = 'TOP-DOWN'."""
    cards = _maxim_common(fr, [
        scard("DATE-OBS", iso(fr.start, 2), "YYYY-MM-DDThh:mm:ss observation, UT", width=0,
              sep=" /")])
    return cards + [
        scard("SWCREATE", "MaxIm DL Version 6.27 211016 1NURE", "Name of software", pad=0,
              width=0, sep=" /"),
        scard("ROWORDER", "TOP-DOWN", "          Image write order, BOTTOM-UP or TOP-DOWN",
              width=0, sep=" /"),
        fcard("PEDESTAL", 0, "{:d}", "Correction to add for zero-based ADU", sep=" /"),
    ] + fr.wcs_cards()


# --- N.I.N.A. and Sequence Generator Pro ------------------------------------------------------

def nina(fr: Frame) -> list:
    """N.I.N.A. 3.2 (``NINA_light_6``, ``NINA_bias_1``): IMAGETYP LIGHT/BIAS/DARK/FLAT,
    DATE-LOC local and DATE-OBS UTC with 7 digits, MJD-OBS, DATE-AVG, GAIN (a camera
    setting) next to OFFSET with EGAIN in e-/ADU, ROWORDER = 'TOP-DOWN'."""
    sp, sub = fr.spec, sub_ms(fr.plan)
    mid_ms = fr.start + fr.plan.exptime * 500.0
    mid = iso(int(mid_ms), 7, sub + int(round((mid_ms % 1) * 10_000)))
    ra, dec = fr.radec
    cards = [
        scard("IMAGETYP", fr.kind.upper(), "Type of exposure", pad=0),
        card("EXPOSURE", _r(fr.plan.exptime), "[s] Exposure duration"),
        card("EXPTIME", _r(fr.plan.exptime), "[s] Exposure duration"),
        scard("DATE-LOC", iso(fr.start, 7, sub, fr.tz), "Time of observation (local)", pad=0),
        scard("DATE-OBS", iso(fr.start, 7, sub), "Time of observation (UTC)", pad=0),
        card("MJD-OBS", f"{fr.plan.jd_start - eph.MJD0:.10f}", "Modified Julian Date of "
             "observation"),
        scard("DATE-AVG", mid, "Averaged midpoint time (UTC)", pad=0),
        card("MJD-AVG", f"{fr.plan.jd_mid - eph.MJD0:.10f}", "Modified Julian Date of averaged"
             " midpoint"),
        card("XBINNING", str(fr.b), "X axis binning factor"),
        card("YBINNING", str(fr.b), "Y axis binning factor"),
        card("GAIN", "100", "Sensor gain"),
        card("OFFSET", "50", "Sensor gain offset"),
        card("EGAIN", _r(sp.gain), "[e-/ADU] Electrons per A/D unit"),
        card("XPIXSZ", _r(fr.pix_um), "[um] Pixel X axis size"),
        card("YPIXSZ", _r(fr.pix_um), "[um] Pixel Y axis size"),
        scard("INSTRUME", "ZWO ASI1600MM Pro", "Imaging instrument name", pad=0),
        card("SET-TEMP", _r(sp.set_temp), "[degC] CCD temperature setpoint"),
        card("CCD-TEMP", _r(round(fr.plan.ccd_temp, 1)), "[degC] CCD temperature"),
        scard("TELESCOP", "Sim Refractor", "Name of telescope", pad=0),
        card("FOCALLEN", _r(fr.focal_mm), "[mm] Focal length"),
        card("RA", _r(ra), "[deg] RA of telescope"),
        card("DEC", _r(dec), "[deg] Declination of telescope"),
        card("SITEELEV", _r(sp.elevation), "[m] Observation site elevation"),
        card("SITELAT", _r(sp.latitude), "[deg] Observation site latitude"),
        card("SITELONG", _r(sp.longitude), "[deg] Observation site longitude"),
        scard("FWHEEL", "ZWO Filter Wheel", "Filter Wheel name", pad=0),
        # N.I.N.A. names the wheel's current slot on every frame, biases and darks too
        scard("FILTER", fr.filter or sp.filters[-1], "Active filter name", pad=0),
    ]
    if fr.light:
        cards.append(scard("OBJECT", fr.object, "Name of the object of interest", pad=0))
    cards += [scard("OBJCTRA", sexa(ra / 15.0, 0), "[H M S] RA of imaged object", pad=0),
              scard("OBJCTDEC", sexa(dec, 0, sign=True), "[D M S] Declination of imaged object",
                    pad=0),
              scard("ROWORDER", "TOP-DOWN", "FITS Image Orientation", pad=0),
              card("EQUINOX", "2000.0", "Equinox of celestial coordinate system"),
              scard("SWCREATE", "N.I.N.A. 3.2.0.3005 (x64)", "Software that created this file",
                    pad=0)]
    return cards + fr.wcs_cards()


SGP_KIND = {"light": "LIGHT", "bias": "BIAS", "dark": "DARK", "flat": "FLAT"}


def sgp(fr: Frame) -> list:
    """Sequence Generator Pro 3.1 (``SGP_light_1``): EXPOSURE only, CREATOR, DATE-LOC and
    DATE-OBS with 7 digits, XBINNING + CCDXBIN, unsigned 'D M S' site, and its own incomplete
    WCS (CTYPE/CRPIX/CRVAL without CD, SCALE instead) on lights without a solve."""
    sp, sub = fr.spec, sub_ms(fr.plan)
    ra, dec = fr.radec
    cards = []
    if fr.light and not sp.wcs:
        cards += [card("CRPIX1", f"{sp.nx // 2}", "reference spectrum pixel coordinate for "
                       "axis 1"),
                  card("CRPIX2", f"{sp.ny // 2}", "reference spectrum pixel coordinate for "
                       "axis 2"),
                  scard("CTYPE1", "RA---TAN", "standard system and projection"),
                  scard("CTYPE2", "DEC--TAN", "standard system and projection")]
    if fr.light:
        cards.append(scard("OBJECT", fr.object, "Object name"))
    cards += [
        scard("DATE-LOC", iso(fr.start, 7, sub, fr.tz), "Local observation date"),
        scard("DATE-OBS", iso(fr.start, 7, sub), "UTC observation date"),
        scard("IMAGETYP", SGP_KIND[fr.kind], "Type of frame"),
        scard("CREATOR", "Sequence Generator Pro v3.1.0.479", "Capture software"),
        scard("INSTRUME", "ZWO ASI183MM Pro", "Instrument name"),
        card("SITEELEV", f"{sp.elevation:.0f}", "Elevation of the imaging site in meters"),
        scard("SITELAT", _dms_sgp(sp.latitude), "Latitude of the imaging site in degrees"),
        scard("SITELONG", _dms_sgp(sp.longitude), "Longitude of the imaging site in degrees"),
    ]
    if fr.kind in ("light", "flat"):
        cards += [scard("FWHEEL", "Manual Filter Wheel", "Filter Wheel name"),
                  scard("FILTER", fr.filter, "Filter name")]
    cards += [
        card("EXPOSURE", f"{fr.plan.exptime:g}", "Exposure time in seconds"),
        card("CCD-TEMP", f"{fr.plan.ccd_temp:g}", "Camera cooler temperature"),
        card("SET-TEMP", f"{sp.set_temp:g}", "Camera cooler target temperature"),
        card("XBINNING", str(fr.b), "Camera X Bin"), card("CCDXBIN", str(fr.b), "Camera X Bin"),
        card("YBINNING", str(fr.b), "Camera Y Bin"), card("CCDYBIN", str(fr.b), "Camera Y Bin"),
    ]
    if fr.light:
        scale = f"{sp.scale:.5g}"
        cards += [scard("TELESCOP", "EQMOD ASCOM HEQ5/6", "Telescope name"),
                  card("RA", _r(ra), "Object Right Ascension in degrees"),
                  card("DEC", _r(dec), "Object Declination in degrees")]
        if not sp.wcs:
            cards += [card("CRVAL1", _r(ra), "RA at image center in degrees"),
                      card("CRVAL2", _r(dec), "DEC at image center in degrees")]
        cards += [scard("OBJCTRA", sexa(ra / 15.0, 3), "Object Right Ascension in hms"),
                  scard("OBJCTDEC", sexa(dec, 3, sign=True), "Object Declination in degrees"),
                  card("FOCALLEN", f"{fr.focal_mm:g}", "The focal length of the telescope in mm"),
                  card("SCALE", scale, "Image scale (arcsec / pixel)"),
                  card("PIXSCALE", scale, "Image scale (arcsec / pixel)")]
    cards += [card("GAIN", "120", "Camera gain"),
              card("EGAIN", _r(sp.gain), "Electrons Per ADU"),
              card("OFFSET", "30", "Camera offset")]
    return cards + fr.wcs_cards()


def _dms_sgp(value: float) -> str:
    """SGP's '51 3 0.000': no zero padding of degrees and minutes."""
    neg = value < 0
    total = round(abs(value) * 3600.0, 3)
    d, rem = divmod(total, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{'-' if neg else ''}{int(d)} {int(m)} {s:.3f}"


# --- SharpCap, INDI ---------------------------------------------------------------------------

def sharpcap(fr: Frame) -> list:
    """SharpCap 4.1 (``SharpCap_light_2``): no frame type, no filter; DATE-OBS/-END/-AVG from
    the PC clock with 7 digits; JD_UTC mid-exposure; GAIN/OFFSET settings; EGAIN at the ADC
    depth and EGAINSAV at the saved depth; RA/DEC and EQUINOX of date (JNow);
    ROWORDER = 'TOP-DOWN'."""
    sp, sub = fr.spec, sub_ms(fr.plan)
    shift = 2 ** (16 - sp.bit_depth)
    ra, dec = fr.radec
    year = 2000.0 + (fr.plan.jd_mid - 2451545.0) / 365.25
    ra_now, dec_now = jnow(ra, dec, fr.plan.jd_mid)
    cards = [card("EQUINOX", _r(year), ""), card("GAIN", "300", ""),
             scard("OBJECT", fr.object, "", pad=0) if fr.light else None,
             card("OFFSET", "8", ""), card("BLKLEVEL", "8", ""),
             scard("OBJCTDEC", sexa(dec_now, 3, sign=True), "Epoch : JNOW", pad=0),
             card("EGAIN", f"{sp.gain * shift:.4g}", "Electrons per ADU at true ADC bit depth"),
             card("ADCBITS", str(sp.bit_depth), "Bit depth of camera sensor ADC in current mode"),
             card("EGAINSAV", f"{sp.gain:.4g}", "Electrons per ADU at saved bit depth"),
             scard("OBJCTRA", sexa(ra_now / 15.0, 3), "Epoch : JNOW", pad=0),
             card("FOCALLEN", f"{fr.focal_mm:g}", ""),
             card("RA", _r(ra_now), "Epoch : JNOW"),
             scard("ROWORDER", "TOP-DOWN", "", pad=0),
             card("EXPTIME", f"{fr.plan.exptime:g}", "seconds"),
             card("XPIXSZ", _r(fr.pix_um), "microns, includes binning if any"),
             card("YPIXSZ", _r(fr.pix_um), "microns, includes binning if any"),
             card("XBINNING", str(fr.b), ""), card("YBINNING", str(fr.b), ""),
             card("DEC", _r(dec_now), "Epoch : JNOW"),
             card("CCD-TEMP", f"{fr.plan.ccd_temp:g}", "C"),
             scard("SWCREATE", "SharpCap v4.1.12946.0, 64 bit", "", pad=0),
             scard("DATE-OBS", iso(fr.start, 7, sub), "System Clock:Est. Frame Start", pad=0),
             scard("DATE-END", iso(fr.end, 7, sub), "System Clock:Est. Frame End", pad=0),
             scard("DATE-AVG", iso((fr.start + fr.end) // 2, 7, sub),
                   "System Clock:Est. Frame Mid Point", pad=0),
             card("JD_UTC", f"{fr.plan.jd_mid:.10f}", "Julian Date at mid exposure"),
             card("RDNOISE", f"{sp.read_noise:g}", "Read noise in electrons"),
             scard("INSTRUME", "ZWO ASI178MM", "", pad=0)]
    return [c for c in cards if c is not None] + fr.wcs_cards()


INDI_FRAME = {"light": "Light", "bias": "Bias", "dark": "Dark", "flat": "Flat"}


def indi(fr: Frame) -> list:
    """KStars/Ekos with an INDI camera (``KStarsINDI_light_1``): the frame type only in
    FRAME, E-notation numbers, PIXSIZE unbinned + XPIXSZ binned, SCALE, decimal site,
    DATAMIN/DATAMAX of the frame's own pixels (not a saturation level)."""
    sp = fr.spec
    ra, dec = fr.radec
    cards = [scard("INSTRUME", "ZWO CCD ASI120MM", "CCD Name"),
             scard("TELESCOP", "EQMod Mount", "Telescope name"),
             scard("OBSERVER", "Unknown", "Observer name")]
    if fr.light:
        cards.append(scard("OBJECT", fr.object, "Object name"))
    cards += [card("EXPTIME", f"{fr.plan.exptime:.6E}", "Total Exposure Time (s)"),
              card("CCD-TEMP", f"{fr.plan.ccd_temp:.2E}", "CCD Temperature (Celsius)"),
              card("PIXSIZE1", f"{sp.pixel_size_um:.6E}", "Pixel Size 1 (microns)"),
              card("PIXSIZE2", f"{sp.pixel_size_um:.6E}", "Pixel Size 2 (microns)"),
              card("XBINNING", str(fr.b), "Binning factor in width"),
              card("YBINNING", str(fr.b), "Binning factor in height"),
              card("XPIXSZ", f"{fr.pix_um:.6E}", "X binned pixel size in microns"),
              card("YPIXSZ", f"{fr.pix_um:.6E}", "Y binned pixel size in microns"),
              scard("FRAME", INDI_FRAME[fr.kind], "Frame Type")]
    if fr.kind in ("light", "flat"):
        cards.append(scard("FILTER", fr.filter, "Filter"))
    cards += [card("FOCALLEN", f"{fr.focal_mm:.2E}", "Focal Length (mm)"),
              card("SCALE", f"{sp.scale:.6E}", "arcsecs per pixel"),
              card("SITELAT", f"{sp.latitude:.6E}", "Latitude of the imaging site in degrees"),
              card("SITELONG", f"{sp.longitude:.6E}", "Longitude of the imaging site in degrees")]
    if fr.light:
        h = sexa(ra / 15.0, 2)
        cards += [scard("OBJCTRA", " " + h[1:] if h[0] == "0" else h, "Object J2000 RA in Hours"),
                  scard("OBJCTDEC", sexa(dec, 2, sign=True), "Object J2000 DEC in Degrees"),
                  card("RA", f"{ra:.6E}", "Object J2000 RA in Degrees"),
                  card("DEC", f"{dec:.6E}", "Object J2000 DEC in Degrees"),
                  card("EQUINOX", "2000", "Equinox")]
    cards += [scard("DATE-OBS", iso(fr.start, 3), "UTC start date of observation", pad=0),
              fits.Card("COMMENT", "Generated by INDI"),
              card("DATAMIN", f"{int(fr.data.min())}.", "Minimum value"),
              card("DATAMAX", f"{int(fr.data.max())}.", "Maximum value")]
    return cards + fr.wcs_cards()


# --- observatories: LCO, IRAF-style, a robotic telescope -----------------------------------------

LCO_TYPE = {"light": "EXPOSE", "bias": "BIAS", "dark": "DARK", "flat": "SKYFLAT"}


def lco(fr: Frame) -> list:
    """LCO raw frame (``LCO_raw_light_1``), in one HDU: OBSTYPE, DATE-OBS ms, DAY-OBS, UTSTART/
    UTSTOP, MJD-OBS, CCDSUM, CCDATEMP, SATURATE, RA/DEC 'HH:MM:SS.sss' strings, PIXSCALE."""
    sp = fr.spec
    ra, dec = fr.radec
    cards = [
        scard("ORIGIN", "LCOGT", "Organization responsible for the data"),
        scard("SITEID", "sim", "ID code of the Observatory site"),
        scard("TELESCOP", "1m0-99", "The Name of the Telescope"),
        card("LATITUDE", f"{sp.latitude:.7f}", "[deg North] Telescope Latitude"),
        card("LONGITUD", f"{sp.longitude:.7f}", "[deg East] Telescope Longitude"),
        card("HEIGHT", f"{sp.elevation:.3f}", "[m] Altitude of Telescope above sea level"),
        scard("OBSTYPE", LCO_TYPE[fr.kind], "Observation type"),
        scard("TIMESYS", "UTC", "Time system used"),
        scard("DATE", iso(fr.end + 5000, 0)[:10], "[UTC] Date this FITS file was written",
              pad=0),
        scard("DATE-OBS", iso(fr.start, 3), "[UTC] Start date and time of the observati"),
        scard("DAY-OBS", fr.plan.night, "[UTC] Date at start of local observing night"),
        scard("UTSTART", iso(fr.start, 3)[11:], "[UTC] The start time of the observation"),
        scard("UTSTOP", iso(fr.end, 3)[11:], "[UTC] The finish time of the observation"),
        card("MJD-OBS", f"{fr.plan.jd_start - eph.MJD0:.7f}", "[UTC days] Start date/time "
             "(Modified Julian Dat"),
        card("EXPTIME", f"{fr.plan.exptime:.7f}", "[s] Exposure length"),
        card("REQTIME", f"{fr.plan.exptime:.7f}", "[s] Requested exposure length"),
        scard("FILTER1", "air", "The first filter wheel filter type"),
        scard("FILTER2", fr.filter if fr.kind in ("light", "flat") else "air",
              "The second filter wheel filter type"),
        scard("FILTER", fr.filter if fr.kind in ("light", "flat") else "air", "Filter used"),
        scard("INSTRUME", "fa99", "Instrument used"),
        card("GAIN", f"{sp.gain:.7f}", "[electrons/count] Pixel gain"),
        card("RDNOISE", f"{sp.read_noise:.7f}", "[electrons/pixel] Read noise"),
        card("SATURATE", f"{float(sp.saturation):.7f}", "[ADU] Saturation level"),
        card("MAXLIN", f"{float(sp.saturation):.7f}", "[ADU] Non-linearity level"),
        scard("CCDSUM", f"{fr.b} {fr.b}", "CCD on-chip summing/binning"),
        card("PIXSCALE", f"{sp.scale:.7f}", "[arcsec/pixel] Nominal pixel scale on sky"),
        card("CCDSTEMP", f"{sp.set_temp:.7f}", "[deg C] CCD required temperature"),
        card("CCDATEMP", f"{fr.plan.ccd_temp:.7f}", "[deg C] CCD actual temperature"),
    ]
    if fr.light:
        cards += [scard("RA", sexa(ra / 15.0, 3, sep=":"), "[HH:MM:SS.sss] RA where telescope "
                        "is pointing"),
                  scard("DEC", sexa(dec, 2, sign=True, sep=":"), "[sDD:MM:SS.ss] Dec where "
                        "telescope is pointing"),
                  scard("RADESYS", "ICRS", "[[FK5,ICRS]] Fundamental coord. system of the o"),
                  scard("OBJECT", fr.object, "Object name")]
    return cards + [c for c in fr.wcs_cards() if c.keyword != "RADECSYS"]  # RADESYS says it


IRAF_TYPE = {"light": "object", "bias": "zero", "dark": "dark", "flat": "flat"}


def iraf(fr: Frame) -> list:
    """An IRAF-era observatory camera (the NOAO/KPNO convention the issue names): IMAGETYP
    object/zero/dark/flat, DATE-OBS the date only + UT 'hh:mm:ss.s', CCDSUM, RA/DEC with
    colons, EPOCH; the detector temperature in Kelvin (CCDTEMP), as cryogenic observatory
    cameras report it. No real header of this kind is in ``shared/headers/``."""
    sp = fr.spec
    ra, dec = fr.radec
    date = iso(fr.start, 1)
    cards = [scard("OBSERVAT", "SIMOBS", "observatory"),
             scard("TELESCOP", "0.9m", "telescope"),
             scard("IMAGETYP", IRAF_TYPE[fr.kind], "image type"),
             scard("OBJECT", fr.object if fr.light else IRAF_TYPE[fr.kind], "object name"),
             scard("DATE-OBS", date[:10], "date (yyyy-mm-dd) of obs."),
             scard("UT", date[11:], "universal time of start"),
             card("EXPTIME", f"{fr.plan.exptime:.3f}", "actual integration time"),
             card("DARKTIME", f"{fr.plan.exptime + 1.2:.3f}", "total elapsed time"),
             scard("FILTER", fr.filter if fr.kind in ("light", "flat") else "", "filter"),
             scard("CCDSUM", f"{fr.b} {fr.b}", "on-chip binning"),
             card("CCDTEMP", f"{fr.plan.ccd_temp + 273.15:.2f}", "[K] detector temperature")]
    if fr.light:
        cards += [scard("RA", sexa(ra / 15.0, 2, sep=":"), "right ascension"),
                  scard("DEC", sexa(dec, 1, sign=True, sep=":"), "declination"),
                  card("EPOCH", "2000.0", "epoch of ra and dec"),
                  card("SECPIX", f"{sp.scale:.4f}", "arcsec per binned pixel"),
                  card("AIRMASS", f"{fr.plan.airmass:.3f}", "airmass")]
    return cards + fr.wcs_cards()


def robotic(fr: Frame) -> list:
    """The robotic telescope of the issue: no frame-type keyword (the kind is in its folder),
    DATE-OBS in local time with its offset ('2017-12-20T01:36:12.023-0700'), EXPOSURE,
    BINX/BINY, TEMPERAT, RA_OBJ/DEC_OBJ in degrees, PIXSCALE."""
    sp = fr.spec
    ra, dec = fr.radec
    local = iso(fr.start, 3, 0, fr.tz)
    offset = f"{'-' if fr.tz < 0 else '+'}{abs(fr.tz):02d}00"
    cards = [scard("TELESCOP", "Robotic 0.4m", "telescope"),
             scard("INSTRUME", "FLI PL16803", "camera"),
             scard("DATE-OBS", local + offset, "local time of exposure start"),
             card("EXPOSURE", f"{fr.plan.exptime:.3f}", "exposure (s)"),
             card("BINX", str(fr.b), "binning x"), card("BINY", str(fr.b), "binning y"),
             card("TEMPERAT", f"{fr.plan.ccd_temp:.2f}", "CCD temperature (C)")]
    if fr.kind in ("light", "flat"):
        cards.append(scard("FILTER", fr.filter, "filter"))
    if fr.light:
        cards += [scard("OBJECT", fr.object, "target"),
                  card("RA_OBJ", f"{ra:.6f}", "target RA (deg J2000)"),
                  card("DEC_OBJ", f"{dec:.6f}", "target Dec (deg J2000)"),
                  card("PIXSCALE", f"{sp.scale:.4f}", "arcsec/pixel")]
    return cards + fr.wcs_cards()


# --- smart telescopes -----------------------------------------------------------------------

def seestar(fr: Frame) -> list:
    """ZWO Seestar S50 raw sub (``Seestar_light_sub_3``): CREATOR, IMAGETYP 'Light' on every
    frame, EXPOSURE/EXPTIME/TOTALEXP '10.', CCD-TEMP, DATE-OBS 6 digits ('Image created
    time', yet the START of the exposure: in the real subs of shared/headers the file name's
    local time is DATE-OBS + EXPTIME + ~3 s), FILTER 'IRCUT', GAIN 80."""
    sp = fr.spec
    ra, dec = fr.radec
    exp = fcard("EXPTIME", fr.plan.exptime, "dot", "Exposure time in seconds")
    return [scard("CREATOR", "ZWO Seestar S50", "Capture software"),
            scard("PRODUCER", "ZWO", "Powered by ZWO"),
            card("XORGSUBF", "0", "Subframe X position in binned pixels"),
            card("YORGSUBF", "0", "Subframe Y position in binned pixels"),
            card("FOCALLEN", f"{fr.focal_mm:.0f}", "Focal length of telescope in mm"),
            card("APERTURE", "5.", "Name of field of view aperture"),
            card("EQMODE", "1", "Equatorial mode"),
            scard("PROGRAM", "4.70", "The name of the software task that created the"),
            card("XBINNING", str(fr.b), "Camera X Bin"), card("YBINNING", str(fr.b), "Camera Y Bin"),
            card("CCDXBIN", str(fr.b), "Camera X Bin"), card("CCDYBIN", str(fr.b), "Camera Y Bin"),
            card("XPIXSZ", _r(np.float32(fr.pix_um)), "pixel size in microns (with binning)"),
            card("YPIXSZ", _r(np.float32(fr.pix_um)), "pixel size in microns (with binning)"),
            scard("IMAGETYP", "Light", "Type of image"),
            fcard("EXPOSURE", fr.plan.exptime, "dot", "Exposure time in seconds"), exp,
            card("CCD-TEMP", f"{fr.plan.ccd_temp:g}", "sensor temperature in C"),
            card("RA", f"{ra:.8g}", "Object Right Ascension in degrees"),
            card("DEC", f"{dec:.8g}", "Object Declination in degrees"),
            card("SITELONG", f"{sp.longitude:.6g}", "longitude of the imaging site in degrees"),
            card("SITELAT", f"{sp.latitude:.6g}", "latitude of the imaging site in degrees"),
            scard("DATE-OBS", iso(fr.start, 6, sub_ms(fr.plan)), "Image created time"),
            scard("FILTER", fr.filter, "Filter used when taking image"),
            scard("INSTRUME", "Seestar S50", "Camera model"),
            card("GAIN", "80", "Gain Value"),
            scard("TELESCOP", "S50_5eed5eed", "Telescope name"),
            scard("OBJECT", fr.object, "name or catalog number of object being imaged"),
            fcard("TOTALEXP", fr.plan.exptime, "dot", "Total Exposure Time in seconds")
            ] + fr.wcs_cards()


def dwarf(fr: Frame) -> list:
    """DWARF III raw frame (``DWARF3_light_1``, ``DWARF3_dark_1``): no frame type, DATE-OBS
    'Time end of exposure' (ms), EXPTIME '60.', DET-TEMP integer degC, FILTER 'Astro' ('' on
    darks), RA/DEC 0. on darks."""
    ra, dec = fr.radec if fr.light else (0.0, 0.0)
    return [scard("DATE-OBS", iso(fr.end, 3), "Time end of exposure"),
            fcard("EXPTIME", fr.plan.exptime, "dot", "[s] Exposure Time"),
            card("GAIN", "60", "Gain"), card("RESTACK", "0", "is Mega Stack"),
            card("XBINNING", str(fr.b), "binning factor used on X axis"),
            card("YBINNING", str(fr.b), "binning factor used on Y axis"),
            scard("FILTER", fr.filter if fr.light else "", "selected filter",
                  pad=8 if fr.light else 0),
            scard("CAMERA", "TELE", "shooting camera"),
            fcard("XPIXSZ", fr.pix_um, "dot", "[um] pixel size in microns (with binning)"),
            fcard("YPIXSZ", fr.pix_um, "dot", "[um] pixel size in microns (with binning)"),
            fcard("FOCALLEN", fr.focal_mm, "dot", "[mm] Focal length of telescope in mm"),
            card("DET-TEMP", str(int(round(fr.plan.ccd_temp))), "Detector temperature in C"),
            card("RA", f"{ra:.7g}" + ("." if ra == int(ra) else ""),
                 "[deg] Observe object RA coordinate (J2000)"),
            card("DEC", f"{dec:.7g}" + ("." if dec == int(dec) else ""),
                 "[deg] Observe object DEC coordinate (J2000)"),
            scard("OBJECT", fr.object if fr.light else "", "Observe object",
                  pad=8 if fr.light else 0),
            scard("TELESCOP", "DWARFIII", "DWARF III telescope"),
            scard("INSTRUME", "DWARFIII", "DWARF III instrument"),
            scard("ORIGIN", "DWARFLAB", "DWARF III's creator")] + fr.wcs_cards()


HEADER_MAKERS = {"maxim_old": maxim_old, "maxim": maxim, "nina": nina, "sgp": sgp,
                 "sharpcap": sharpcap, "indi": indi, "lco": lco, "iraf": iraf,
                 "robotic": robotic, "seestar": seestar, "dwarf": dwarf}
