"""``python -m engine recipe=NAME …`` runs the same command as ``dreamloom``."""

from engine.cli import main

main()
