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

from clinepipe.headers.coords import parse_angle, parse_position
from clinepipe.headers.facts import HeaderFacts, HeaderRules, read_header_facts
from clinepipe.headers.pixels import adc_saturation
from clinepipe.headers.problem import Problem
from clinepipe.headers.profiles import PROFILES, detect_profile

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
