"""``python -m engine recipe=NAME …`` runs the same command as ``dreamloom``."""

from engine.launch import main

main()
