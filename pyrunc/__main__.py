"""`python -m pyrunc` is the same as the `pyrunc` command."""

from pyrunc.cli.main import main

raise SystemExit(main())
