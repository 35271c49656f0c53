"""Reading any acquisition program's FITS headers: what a frame is, when, and with what.

Public names
------------
read_header_facts(header, relpath="", rules=None) -> HeaderFacts
HeaderRules        the ``[headers]`` config section
HeaderFacts        the facts of one header, each with the keyword it came from
Problem            (reason, message, fix, fatal)
detect_profile(header) -> (profile, keyword)
parse_position("RA DEC") -> (ra_deg, dec_deg);  parse_angle(text, hours=False) -> deg
adc_saturation(data) -> (bits, saturation_adu) or None
"""

import importlib

#: where each public name lives: loaded on first use, so that reading the configuration
#: (``HeaderRules``) does not import astropy for commands that never open a FITS file
_HOMES = {"parse_angle": "coords", "parse_position": "coords", "HeaderFacts": "facts",
          "HeaderRules": "facts", "read_header_facts": "facts", "adc_saturation": "pixels",
          "Problem": "problem", "PROFILES": "profiles", "detect_profile": "profiles"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"clinepipe.headers.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'clinepipe.headers' has no attribute {name!r}")


__all__ = [
           "PROFILES",
           "HeaderFacts",
           "HeaderRules",
           "Problem",
           "adc_saturation",
           "detect_profile",
           "parse_angle",
           "parse_position",
           "read_header_facts",
]
