"""python -m reconcile: the same as the `mailroll` command."""

from reconcile.cli.main import main

# guarded: worker processes (ingest.workers) import the main module under another name and must
# not run the CLI
if __name__ == "__main__":
    main()
