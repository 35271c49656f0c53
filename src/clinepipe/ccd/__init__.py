"""CCD calibration: stacking frames, master bias/dark/flat, reducing lights, the mask bits."""
