"""Exit codes of `bulkupdate run`, describing the whole job (all its runs), not only the last run.

Pure constants; documented in the README.
"""

EXIT_OK = 0  # every row of the job applied
EXIT_FAILED_ROWS = 1  # finished; some rows failed (see the failures file)
EXIT_USAGE = 2  # usage, configuration or input error before any write
EXIT_ABORTED = 3  # a systemic error (permissions, domain, credentials); resumable
EXIT_INTERRUPTED = 4  # SIGTERM/SIGINT; resumable
