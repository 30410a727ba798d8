"""``medzoo ...`` run in the test's own process, for tests about what a command does rather than about a separate
process (a kill, a launcher, the console script): the same ``main`` the console script calls, without starting an
interpreter and importing torch and transformers again (seconds per command)."""

from __future__ import annotations

import contextlib
import io
import subprocess

from medzoo.app.cli.main import main
from medzoo.testing import single_thread


def medzoo_here(*args: str) -> subprocess.CompletedProcess:
    """Run ``medzoo ARGS`` here on one torch thread: its exit status (0, or what ``main`` exited with), standard
    output and standard error, as :func:`subprocess.run` with ``capture_output=True, text=True`` returns them."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    with single_thread(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return subprocess.CompletedProcess(["medzoo", *args], status, out.getvalue(), err.getvalue())
