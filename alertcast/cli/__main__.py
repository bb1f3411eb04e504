"""``python -m alertcast.cli``: the ``alertcast`` command."""

from alertcast.cli import main

raise SystemExit(main())
