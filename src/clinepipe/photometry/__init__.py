"""Photometry: background, PSF shape, aperture fluxes with errors, times and airmass, frame quality."""
