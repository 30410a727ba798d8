"""Assertions the fault-injection suites share: one-line errors, in-process and through the CLI."""

from __future__ import annotations

import pytest

from medzoo.app.cli.main import main


def one_line(error: BaseException | str) -> str:
    """The message, asserted to be a single line without a traceback."""
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


def cli_error(capsys, *args: object) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one ``error:`` line and no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in args])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]
