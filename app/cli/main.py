"""The root ``medzoo`` command: built-in commands plus those plugins add through ``register_commands``."""

from __future__ import annotations

import importlib
import sys
import threading

import click

from medzoo.core.errors import MedzooError
from medzoo.core.file_io.storage import STORAGE_EXIT_CODE, storage_errno, storage_message

__all__ = ["STORAGE_EXIT_CODE", "cli", "main", "storage_message"]

#: command name -> ``module:attribute`` of the click command or group; a module is imported only when its
#: command runs or shows its help, so ``medzoo --help`` and argument errors never import torch
BUILTIN_COMMANDS: dict[str, str] = {
    "data": "medzoo.app.cli.data:data",
    "instruct": "medzoo.app.cli.instruct:instruct",
    "judge": "medzoo.app.cli.judge:judge",
    "score": "medzoo.app.cli.score:score",
    "leaderboard": "medzoo.app.cli.leaderboard:leaderboard",
    "train": "medzoo.app.cli.train:train",
    "merge-lora": "medzoo.app.cli.train:merge_lora_command",
    "model": "medzoo.app.cli.train:model_group",
    "eval": "medzoo.app.cli.evaluate:evaluate_command",
    "run": "medzoo.app.cli.run:run_command",
    "sweep": "medzoo.app.cli.run:sweep_command",
    "plot": "medzoo.app.cli.plot:plot_command",
    "import": "medzoo.app.cli.interop:import_command",
    "export": "medzoo.app.cli.interop:export_command",
    "apply-delta": "medzoo.app.cli.interop:apply_delta_command",
    "make-delta": "medzoo.app.cli.interop:make_delta_command",
    "speed": "medzoo.app.cli.speed:speed",
    "bench": "medzoo.app.cli.speed:bench_alias",
    "chat": "medzoo.app.cli.chat:chat_command",
    "serve": "medzoo.app.cli.serve:serve_command",
    "plugins": "medzoo.app.cli.plugins:plugins_command",
    "zoo": "medzoo.app.cli.zoo:zoo_command",
    "recipe": "medzoo.app.cli.recipes:recipe_group",
}


def import_command(target: str) -> click.Command:
    """The click command ``module:attribute`` names."""
    module_path, attribute = target.split(":")
    command = getattr(importlib.import_module(module_path), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class MedzooGroup(click.Group):
    """click's lazy group: a built-in command's module is imported when that command is invoked or its help
    shown; plugin commands (hook ``register_commands``) are added on the first name that is not built in, or
    when every command is listed (``medzoo --help``). Importing the CLI has no side effects."""

    _plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from medzoo.core.plugin_system.manager import plugin_system

        plugin_system().manager.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return sorted({*BUILTIN_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in BUILTIN_COMMANDS:
            self.add_command(import_command(BUILTIN_COMMANDS[name]), name)
        if name not in self.commands:
            self._load_plugins()
        return super().get_command(ctx, name)


@click.group(cls=MedzooGroup)
@click.version_option(package_name="medzoo")
def cli() -> None:
    """medzoo: a plugin-based model zoo for biomedical vision-language assistants."""


def quiet_storage_failures_in_writer_threads(arguments: threading.ExceptHookArgs) -> None:
    """A background writer's storage failure (TensorBoard's event thread) prints no thread traceback: the writer
    raises it again in the main thread at its next write or flush, where it becomes the one-line error."""
    if storage_errno(arguments.exc_value) is not None and type(arguments.thread).__name__ == "_AsyncWriterThread":
        return
    PYTHON_THREAD_HOOK(arguments)


PYTHON_THREAD_HOOK = threading.excepthook


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
    if threading.excepthook is not quiet_storage_failures_in_writer_threads:
        global PYTHON_THREAD_HOOK
        PYTHON_THREAD_HOOK = threading.excepthook
        threading.excepthook = quiet_storage_failures_in_writer_threads
    try:
        cli.main(args=argv, standalone_mode=False)
    except MedzooError as error:
        fail(str(error), error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as error:
        sys.exit(error.exit_code)
    except Exception as error:  # a storage failure no writer named (an OSError, safetensors' "os error 28")
        message = storage_message(error)
        if message is None:
            raise
        fail(message, STORAGE_EXIT_CODE)


if __name__ == "__main__":
    main()
