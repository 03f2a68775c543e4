"""The dbt CLI in its own process, minus Python's interpreter teardown.

Run by path, not as a module (`python assets/dbt/dbt_process.py build ...`): importing the
`assets` package would import Dagster into the dbt process. Same arguments, output, artifacts and
exit code as the `dbt` executable. After dbt returns, the exit handlers run as usual (DuckDB closes
the warehouse and checkpoints its write-ahead log, log files are flushed and closed), then the
process ends with `os._exit`: the interpreter's finalization, which frees every object of dbt's
manifest, Jinja environment and generated classes one by one, took 0.5-1.1 s per run and did
nothing a later step can see (docs/MARTS.md, "dbt's fixed cost").
"""

import atexit
import os
import sys
import threading


def _exit_code(code: object) -> int:
    """The process exit code `sys.exit(code)` would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def main() -> None:
    # Run by path, Python put this folder first on sys.path: drop it so that no module here
    # (assets.py, project.py, ...) can shadow a module dbt imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    from dbt.cli.main import cli

    try:
        cli()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    status = _exit_code(code)
    # What the interpreter does on a normal exit, in its order: wait for non-daemon threads, then
    # the exit handlers (dbt-duckdb's closes the database: checkpoint, WAL removed; logging's
    # flushes and closes dbt.log; multiprocessing's removes its semaphores).
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
