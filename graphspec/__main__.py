"""``python -m graphspec`` runs the command line."""

from graphspec.cli import main

main()
