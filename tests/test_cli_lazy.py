"""The CLI is lazy: help and argument errors import neither torch nor transformers (structural, no timing).

Each probe runs the real entry point (``python -m medzoo.app.cli``) in a fresh interpreter with runpy and reports
which heavy modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.app.cli.main import BUILTIN_COMMANDS, import_command

HEAVY = ("torch", "transformers", "accelerate", "peft", "datasets")

PROBE = """
import json, runpy, sys
heavy, runs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
codes = []
for argv in runs:
    sys.argv = ["medzoo", *argv]
    try:
        runpy.run_module("medzoo.app.cli", run_name="__main__")
        codes.append(0)
    except SystemExit as done:
        codes.append(done.code if isinstance(done.code, int) else 1)
print(json.dumps({"codes": codes, "imported": sorted(name for name in heavy if name in sys.modules)}))
"""


def probe(*runs: list[str]) -> dict:
    """Run each argv through the CLI in one fresh interpreter: exit codes and the heavy modules imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(list(runs))],
        capture_output=True, text=True, timeout=SUBPROCESS_HANG_S, env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["train", "--help"], 0),
    (["eval", "--bogus"], 2),
    (["train"], 2),  # missing argument
    (["no-such-command"], 2),
])
def test_help_and_argument_errors_import_no_heavy_module(argv, code):
    result = probe(argv)
    assert result == {"codes": [code], "imported": []}


def test_every_builtin_command_shows_its_help_without_torch():
    runs = [[name, "--help"] for name in BUILTIN_COMMANDS]
    result = probe(*runs)
    assert result["codes"] == [0] * len(runs)
    assert result["imported"] == []


def test_builtin_table_names_each_command_by_its_own_name():
    for name, target in BUILTIN_COMMANDS.items():
        assert import_command(target).name == name, target


def test_import_formats_spelt_out_for_help_match_the_importer():
    from medzoo.app.cli.interop import IMPORT_FORMATS
    from medzoo.app.interop.llava_import import FORMATS

    assert sorted(IMPORT_FORMATS) == sorted(FORMATS)


def test_plugin_commands_are_listed_and_run(monkeypatch):
    """A command a plugin adds through ``register_commands`` appears in the root help and runs."""
    import click
    from click.testing import CliRunner

    from medzoo.app.cli import main as cli_main
    from medzoo.core.plugin_system.hookspecs import hookimpl
    from medzoo.core.plugin_system.manager import register_plugin, unregister_plugin

    @click.command("hello-plugin")
    def hello() -> None:
        """Say hello from a plugin."""
        click.echo("hello from a plugin")

    class Plugin:
        @hookimpl
        def register_commands(self, cli) -> None:
            cli.add_command(hello)

    plugin = Plugin()
    register_plugin(plugin, name="test-cli-lazy-commands")
    try:
        monkeypatch.setattr(cli_main.cli, "_plugins_loaded", False)
        monkeypatch.setattr(cli_main.cli, "commands", dict(cli_main.cli.commands))
        runner = CliRunner()
        listing = runner.invoke(cli_main.cli, ["--help"])
        assert "hello-plugin" in listing.output and "train" in listing.output
        assert runner.invoke(cli_main.cli, ["hello-plugin"]).output == "hello from a plugin\n"
    finally:
        unregister_plugin(plugin)


def every_command():
    """(path, command) for every built-in command and subcommand."""
    import click

    stack = [(name, import_command(target)) for name, target in BUILTIN_COMMANDS.items()]
    while stack:
        path, command = stack.pop()
        yield path, command
        if isinstance(command, click.Group):
            stack.extend((f"{path} {name}", sub) for name, sub in command.commands.items())


def test_short_flags_mean_one_thing_everywhere():
    """-o is always --override (the recipe one), -O always --output, -d always --output-dir."""
    meaning = {"-o": "--override", "-O": "--output", "-d": "--output-dir"}
    seen = set()
    for path, command in every_command():
        for param in command.params:
            for short, long in meaning.items():
                if short in param.opts:
                    assert long in param.opts, f"medzoo {path}: {short} is {param.opts}, expected {long}"
                    seen.add(short)
            if "--output" in param.opts:
                assert "-O" in param.opts, f"medzoo {path}: --output has no -O"
    assert seen == set(meaning)
