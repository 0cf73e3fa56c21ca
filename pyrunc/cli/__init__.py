"""runc's command-line surface: global flags in `main`, one module per command."""
