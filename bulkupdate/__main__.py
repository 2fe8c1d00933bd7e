"""`python -m bulkupdate`: the same entry point as the `bulkupdate` console script."""

from bulkupdate.cli import main

raise SystemExit(main())
