# reconcile.fastpath.main answers `status --json` from the cache before click loads, else runs reconcile.cli.main
from reconcile.fastpath import main

main()
