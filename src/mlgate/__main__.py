"""``python -m mlgate`` is the same as the ``mlgate`` command."""

from mlgate.cli import main

raise SystemExit(main())
