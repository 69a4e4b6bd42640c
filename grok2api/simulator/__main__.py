"""``python -m grok2api.simulator``."""

from grok2api.simulator.cli import main

main()
