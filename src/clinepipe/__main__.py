"""``python -m clinepipe``: the command line."""

from clinepipe.cli import main

main()
