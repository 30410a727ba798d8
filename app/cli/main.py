"""The root ``medzoo`` command: built-in commands plus those plugins add through ``register_commands``."""

from __future__ import annotations

import errno
import importlib
import os
import sys

import click

from medzoo.core.errors import MedzooError

# module path -> attribute(s) holding click commands or groups (comma-separated)
BUILTIN_COMMANDS: dict[str, str] = {
    "medzoo.app.cli.data": "data",
    "medzoo.app.cli.instruct": "instruct",
    "medzoo.app.cli.judge": "judge",
    "medzoo.app.cli.score": "score",
    "medzoo.app.cli.leaderboard": "leaderboard",
    "medzoo.app.cli.train": "train, merge_lora_command, model_group",
    "medzoo.app.cli.evaluate": "evaluate_command",
    "medzoo.app.cli.run": "run_command, sweep_command",
    "medzoo.app.cli.interop": "import_command, export_command, apply_delta_command, make_delta_command",
    "medzoo.app.cli.speed": "speed, bench_alias",
    "medzoo.app.cli.chat": "chat_command",
    "medzoo.app.cli.serve": "serve_command",
    "medzoo.app.cli.plugins": "plugins_command",
    "medzoo.app.cli.zoo": "zoo_command",
    "medzoo.app.cli.recipes": "recipe_group",
}


class MedzooGroup(click.Group):
    """Adds built-in and plugin commands on first use, so importing the CLI has no side effects."""

    _loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module_path, attributes in BUILTIN_COMMANDS.items():
            module = importlib.import_module(module_path)
            for attribute in attributes.split(","):
                self.add_command(getattr(module, attribute.strip()))
        from medzoo.core.plugin_system.manager import plugin_system

        plugin_system().manager.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, name)


@click.group(cls=MedzooGroup)
@click.version_option(package_name="medzoo")
def cli() -> None:
    """medzoo: a plugin-based model zoo for biomedical vision-language assistants."""


#: storage failures a user fixes outside medzoo: shown as one line, exit code 74 (EX_IOERR), no traceback
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
STORAGE_EXIT_CODE = 74


def storage_message(error: OSError) -> str | None:
    """``<path>: <what went wrong>; <what to do>`` for a storage failure, None for any other OSError."""
    reason = STORAGE_ERRNOS.get(error.errno or -1)
    if reason is None:
        return None
    where = error.filename if error.filename is not None else "a file medzoo was writing"
    advice = ("free some space (or point the output elsewhere) and run the command again: finished files were "
              "written atomically and runs resume") if error.errno in (errno.ENOSPC, errno.EDQUOT) else \
        "choose a location you may write to"
    return f"{os.fspath(where)}: {reason} ({errno.errorcode.get(error.errno, error.errno)}); {advice}"


def end_progress_bars() -> None:
    """Close the progress bars a failed command left open, so its error starts on a line of its own."""
    progress = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(progress, "tqdm", None), "_instances", ())):
        bar.close()


def fail(message: str, code: int) -> None:
    end_progress_bars()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one line and exit with code 2, storage failures (disk full,
    read-only, permission) one line with code 74, without a traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except MedzooError as error:
        fail(str(error), error.exit_code)
    except OSError as error:
        message = storage_message(error)
        if message is None:
            raise
        fail(message, STORAGE_EXIT_CODE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as error:
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
