"""``python -m graphspec`` runs the command line."""

from graphspec.cli import console_main

console_main()
