"""Which acquisition program wrote a header (its "profile"), and what that changes.

The profile only changes readings where programs disagree on meaning, never the keyword
order: TheSkyX writes ``SITELONG`` west-positive; the smart telescopes (Seestar, DWARF,
ASIAIR) put the frame type in the file name and DWARF writes ``DATE-OBS`` at the end of the
exposure; N.I.N.A., SharpCap, SGP, APT and the ZWO devices write ``GAIN`` as the camera's
unitless gain setting, while LCO writes it in e-/ADU.
"""

from __future__ import annotations

from clinepipe.headers.values import text

__all__ = ["GAIN_IS_SETTING", "PROFILES", "PROFILE_KEYS", "SMART_TELESCOPES", "detect_profile"]

#: keywords that name the writing program, in the order they are read
PROFILE_KEYS = ("SWCREATE", "CREATOR", "PROGRAM", "ORIGIN", "INSTRUME", "TELESCOP")

# profile -> lower-case fragments of those keywords' values. Checked in this order: a tool that
# re-saved a file (PixInsight) or drove another program (ACP drives MaxIm DL) is named before
# the program underneath, and the smart telescopes before the generic names.
_SIGNATURES = (
    ("pixinsight", ("pixinsight",)),
    ("acp", ("acp->", "acp observatory control")),
    ("seestar", ("seestar", "s50_")),
    ("dwarf", ("dwarflab", "dwarf")),
    ("asiair", ("asiair",)),
    ("thesky", ("thesky",)),
    ("maxim", ("maxim",)),
    ("nina", ("n.i.n.a", "nina")),
    ("sgp", ("sequence generator",)),
    ("sharpcap", ("sharpcap",)),
    ("voyager", ("voyager",)),
    ("ccdops", ("ccdops",)),
    ("ccdsoft", ("ccdsoft",)),
    ("apt", ("astro photography tool",)),
    ("app", ("astro pixel processor",)),
    ("astrofx", ("astrofx",)),
    ("indi", ("indi", "kstars", "ekos")),
    ("lco", ("lcogt", "las cumbres")),
    ("iraf", ("iraf", "noao")),
)

_NAMED_BY_TELESCOP = ("acp", "seestar", "dwarf")

#: every profile a user may force with ``[headers] profile``, plus "generic" (none detected)
PROFILES = tuple(name for name, _ in _SIGNATURES) + ("generic",)

#: profiles whose frame type lives in the file name (and whose non-light frames sit in folders
#: named after their type)
SMART_TELESCOPES = ("seestar", "dwarf", "asiair")

#: profiles whose ``GAIN`` is the camera's unitless gain setting, not e-/ADU
GAIN_IS_SETTING = ("nina", "sharpcap", "sgp", "apt", "seestar", "dwarf", "asiair", "app")


def detect_profile(header) -> tuple[str, str]:
    """The program that wrote ``header``, and the keyword that said so.

    Returns
    -------
    (str, str)
        A name of :data:`PROFILES` and the keyword it was read from; ``("indi", "FRAME")`` for
        a header with INDI's ``FRAME`` keyword and no program named; ``("generic", "")`` when
        nothing is recognised.
    """
    values = {key: (text(header, key) or "").lower() for key in PROFILE_KEYS}
    for name, fragments in _SIGNATURES:
        # a telescope's name is free text: only the names no one would give a telescope count
        keys = PROFILE_KEYS if name in _NAMED_BY_TELESCOP else PROFILE_KEYS[:-1]
        for key in keys:
            if any(f in values[key] for f in fragments):
                return name, key
    if text(header, "FRAME") is not None:
        return "indi", "FRAME"
    if "IRAF-TLM" in header:
        return "iraf", "IRAF-TLM"
    return "generic", ""
