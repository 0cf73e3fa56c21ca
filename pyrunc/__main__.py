"""`python -m pyrunc` is the same as the `pyrunc` command."""

from pyrunc.cli.main import main_and_exit

main_and_exit()
