"""``python -m clinepipe.cli``: the command line."""

from clinepipe.cli import main

main()
