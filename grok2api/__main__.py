"""``python -m grok2api`` runs the command line (see :mod:`grok2api.cli`)."""

from grok2api.cli import main

raise SystemExit(main())
