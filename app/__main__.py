"""`python -m app ...` is the `tesoro` command."""

from app.cli import main

raise SystemExit(main())
