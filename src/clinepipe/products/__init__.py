"""What the pipeline hands to people and archives: reports, AAVSO files, plots, transit packages."""
