"""python -m reconcile: the same as the `mailroll` command."""

from reconcile.cli.main import main

main()
