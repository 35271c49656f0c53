"""clinepipe: the automated nightly photometry pipeline of a small observatory.

Stages, in the order data flows through them: ``ingest`` → ``masters`` → ``reduce`` →
``astrometry`` → ``photometry`` → ``calibrate`` → ``store`` → ``lightcurves``;
``pipeline`` runs them, ``cli`` is the command line, ``simulate`` makes truth to test against.
"""

__version__ = "0.1.0"
