"""Every command block of README.md and docs/ runs as written.

Each ```bash / ```sh / ```shell / ```console block (a console block runs its ``$ `` lines) of README.md,
docs/*.md and docs/examples/*/README.md is one case:

- a block right after ``<!-- not-run: CATEGORY: why -->`` is skipped with that reason (CATEGORY is one of
  ``NOT_RUN``: what the CPU test machine cannot do);
- a block right after ``<!-- run: slow -->`` runs under ``-m slow`` only;
- every other block runs with bash (``set -e -o pipefail``) in a folder prepared once per document from one
  shared world: the inputs the docs assume (``scan.png``, ``test.json``, ``answers.jsonl``), a small
  ``data/synth`` and a tiny trained ``runs/tiny``; what a document's own commands create (``medzoo train
  -d DIR``, ``medzoo data synth --output DIR``) is left out of its folder, so it is made the way the document
  says. The blocks of one document run in order, in the same folder.

``medzoo`` on the PATH is the real CLI with test-size knobs appended per command (``COST``: a few training
steps, a small synthetic set, short answers), so examples stay what a user types.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "docs" / "examples").glob("*/README.md"))]
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
#: why a block may be left out: the reason after ``not-run:`` starts with one of these
NOT_RUN = ("needs network", "needs a GPU", "needs real weights", "needs real data", "long-running")
MARKER = re.compile(r"^<!--\s*(not-run|run):\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")

SMALL_DATA = ["--size", "train=40", "--size", "val=5", "--size", "test=10"]
FEW_STEPS = [
    "-o", "data.synth_options={sizes: {train: 40, val: 5, test: 10}}",
    "-o", "stages.alignment.max_steps=2", "-o", "stages.instruct.max_steps=2",
    "-o", "stages.alignment.global_batch_size=4", "-o", "stages.alignment.micro_batch_size=4",
    "-o", "stages.instruct.global_batch_size=4", "-o", "stages.instruct.micro_batch_size=4",
    "-o", "benchmarks=[{name: synth-vqa-rad, options: {root: '${data.root}', max_new_tokens: 8}}]",
]
#: medzoo subcommand -> arguments the test appends (cost only: what is trained and answered stays the same)
COST: dict[str, list[str]] = {
    "data synth": SMALL_DATA,
    "train": FEW_STEPS,
    "run": FEW_STEPS,
    "sweep": FEW_STEPS,
    "eval": ["--option", "max_new_tokens=8"],
    "chat": ["--max-new-tokens", "8"],
    "speed": ["--steps", "1", "--warmup", "0", "--questions", "4", "--max-new-tokens", "4"],
}
#: what interactive commands read on stdin
STDIN = "What modality is this?\n"


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: tuple[str, str] | None  # ("not-run", reason) or ("run", "slow")

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    def script(self) -> str:
        """The shell text to run (a console block: its ``$ `` lines, without the prompt)."""
        if self.language != "console":
            return self.text
        return "\n".join(line.strip()[2:] for line in self.text.splitlines() if line.strip().startswith("$ "))

    def command_lines(self) -> list[list[str]]:
        """Each command of the block as words (continuations joined, comments dropped)."""
        joined = re.sub(r"\\\n", " ", self.script())
        commands = []
        for line in joined.splitlines():
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            if words:
                commands.append(words)
        return commands


def fenced_blocks(document: Path) -> list[Block]:
    """Every fenced block of a markdown file, with the marker on the line before it (blank lines skipped)."""
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.groups()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[index + 1:end])
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        found = MARKER.match(lines[before].strip()) if before >= 0 else None
        marker = (found.group(1), found.group(2)) if found else None
        blocks.append(Block(document, index + 1, language.lower(), body, marker))
        index = end + 1
    return blocks


def shell_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in fenced_blocks(document)
            if block.language in SHELL_LANGUAGES]


def case(block: Block):
    marks = []
    if block.marker and block.marker[0] == "not-run":
        marks.append(pytest.mark.skip(reason=f"not-run: {block.marker[1]}"))
    elif block.marker == ("run", "slow"):
        marks.append(pytest.mark.slow)
    return pytest.param(block, id=block.name, marks=marks)


# ---------------------------------------------------------------- the markers themselves


def test_every_medzoo_command_block_is_labelled_and_every_marker_is_known():
    for document in DOCUMENTS:
        for block in fenced_blocks(document):
            commands = [line for line in block.text.splitlines() if re.match(r"\s*(\$ )?medzoo ", line)]
            assert block.language or not commands, f"{block.name}: a medzoo command in a block without a language"
            if block.marker is None:
                continue
            kind, reason = block.marker
            assert block.language in SHELL_LANGUAGES, f"{block.name}: a run marker before a {block.language!r} block"
            if kind == "run":
                assert reason == "slow", f"{block.name}: expected <!-- run: slow -->, got {reason!r}"
            else:
                assert reason.startswith(NOT_RUN), f"{block.name}: not-run reason {reason!r}: start with one of {NOT_RUN}"


def test_every_documented_medzoo_command_parses():
    """Even the blocks left out name real commands and options (``--help`` after the words, nothing runs)."""
    from click.testing import CliRunner

    from medzoo.app.cli.main import cli

    runner = CliRunner()
    for block in shell_blocks():
        for words in block.command_lines():
            if words[0] != "medzoo" or "..." in words:
                continue
            path = [word for word in words[1:3] if not word.startswith("-")]
            result = runner.invoke(cli, [*path, "--help"])
            assert result.exit_code == 0, f"{block.name}: medzoo {' '.join(path)}: {result.output[-500:]}"
            known = {opt for option in _options(result.output) for opt in option}
            for word in words[1:]:
                if word in ("|", ">", ">>", "&&", ";") or word.startswith("$("):
                    break
                flag = word.split("=", 1)[0]
                if flag.startswith("-") and flag not in ("-", "--"):
                    assert flag in known, f"{block.name}: medzoo {' '.join(path)} has no option {flag}"


def _options(help_text: str) -> list[set[str]]:
    return [set(re.findall(r"(?<![\w-])(--?[\w][\w-]*)", line.split("  ")[0]))
            for line in (raw.strip() for raw in help_text.splitlines()) if line.startswith("-")]


# ---------------------------------------------------------------- running them


def created_by(blocks: list[Block]) -> set[str]:
    """The folders a document's own commands create (removed from its copy of the world first)."""
    made = set()
    for block in blocks:
        for words in block.command_lines():
            if words[:2] == ["medzoo", "train"]:
                made |= {words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-d", "--output-dir")}
            if words[:3] == ["medzoo", "data", "synth"]:
                made |= {words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-O", "--output")}
    return made


def with_cost(args: list[str]) -> list[str]:
    """``args`` (after ``medzoo``) with the ``COST`` arguments of its command appended."""
    for command in sorted(COST, key=len, reverse=True):
        if args[:len(command.split())] == command.split() and "--help" not in args:
            return [*args, *COST[command]]
    return list(args)


def shim(folder: Path) -> Path:
    """A ``medzoo`` executable for blocks that need a shell: the real CLI, arguments through ``with_cost``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "medzoo"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_documented_commands import with_cost\n"
        "from medzoo.app.cli.main import main\n"
        "main(with_cost(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return folder


OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}


def environment(bin_dir: Path, home: Path) -> dict[str, str]:
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **OFFLINE, "PATH": path, "HF_HOME": str(home / ".hf"), "MEDZOO_THREADS": "2"}


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, input=STDIN,
                          capture_output=True, text=True, timeout=SUBPROCESS_HANG_S)


def plain_commands(block: Block) -> list[list[str]] | None:
    """The block's commands (after ``medzoo``) when each line is a plain ``medzoo ...`` command; None when the
    block needs a shell (pipes, redirections, variables, other programs)."""
    commands = []
    for line in re.sub(r"\\\n", " ", block.script()).splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.commenters = "#"
        lexer.whitespace_split = True
        words = list(lexer)
        if not words:
            continue
        if words[0] != "medzoo" or "$" in line or "`" in line or any(set(w) <= set("|&;<>()") for w in words):
            return None
        commands.append(words[1:])
    return commands


def expand(args: list[str], cwd: Path) -> list[str]:
    """Shell globbing of each word, relative to ``cwd`` (a pattern without a match stays as written)."""
    expanded = []
    for word in args:
        matches = sorted(glob.glob(word, root_dir=cwd)) if any(c in word for c in "*?[") else []
        expanded.extend(matches or [word])
    return expanded


def in_process(commands: list[list[str]], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``medzoo`` commands through the CLI's entry point in this process (no interpreter start per command),
    from ``cwd`` with ``STDIN`` on stdin; stops at the first that exits non-zero."""
    from medzoo.app.cli.main import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    previous, stdin = os.getcwd(), sys.stdin
    os.chdir(cwd)
    sys.stdin = io.TextIOWrapper(io.BytesIO(STDIN.encode()), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            for args in commands:
                try:
                    main(with_cost(expand(args, cwd)))
                except SystemExit as exited:
                    code = exited.code if isinstance(exited.code, int) else int(exited.code is not None)
                if code:
                    break
    finally:
        os.chdir(previous)
        sys.stdin = stdin
    return subprocess.CompletedProcess(commands, code, out.getvalue(), err.getvalue())


def execute(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    commands = plain_commands(block)
    return bash(block.script(), cwd, env) if commands is None else in_process(commands, cwd)


def check(block: Block, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0 and "Traceback" not in done.stderr, (
        f"{block.name} failed (exit {done.returncode}):\n{block.script()}\n"
        f"--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No command may reach the hub (in this process too)."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        for key, value in OFFLINE.items():
            patch.setenv(key, value)
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory, synthetic_data) -> tuple[Path, dict[str, str]]:
    """The folder every document's copy starts from, and the environment commands run in."""
    base = tmp_path_factory.mktemp("documented") / "world"
    base.mkdir()
    env = environment(shim(base.parent / "bin"), base.parent)
    shutil.copytree(synthetic_data(train=40, val=5, test=10), base / "data" / "synth")
    synth = base / "data" / "synth"
    shutil.copy(synth / "images" / "cxr" / "test_000000.png", base / "scan.png")
    shutil.copy(synth / "vqa_rad" / "test.json", base / "test.json")
    references = json.loads((base / "test.json").read_text())
    (base / "answers.jsonl").write_text("".join(
        json.dumps({"question_id": str(item["id"]), "text": item["conversations"][1]["value"]}) + "\n"
        for item in references), encoding="utf-8")
    check(Block(Path(__file__), 0, "bash", "medzoo train tiny --output-dir runs/tiny", None),
          in_process([["train", "tiny", "--output-dir", "runs/tiny"]], base))
    return base, env


class Documents:
    """Per document: its folder (a copy of the world) and the blocks already run there."""

    def __init__(self, world: tuple[Path, dict[str, str]], root: Path) -> None:
        self.base, self.env = world
        self.root = root
        self.ran: dict[Path, set[int]] = {}

    def folder(self, document: Path) -> Path:
        folder = self.root / re.sub(r"\W", "_", str(document.relative_to(ROOT)))
        if not folder.exists():
            shutil.copytree(self.base, folder, symlinks=True)
            for made in created_by(runnable(document)):
                target = folder / made
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
        return folder

    def run(self, block: Block) -> subprocess.CompletedProcess:
        """Run the block, after the document's earlier runnable blocks that have not run yet."""
        folder = self.folder(block.document)
        ran = self.ran.setdefault(block.document, set())
        for earlier in runnable(block.document):
            if earlier.line >= block.line:
                break
            if earlier.line not in ran and earlier.marker is None:  # a slow block is nobody's prerequisite
                ran.add(earlier.line)
                check(earlier, execute(earlier, folder, self.env))
        ran.add(block.line)
        return execute(block, folder, self.env)


@functools.cache
def runnable(document: Path) -> tuple[Block, ...]:
    """The blocks of a document that run (slow ones included), in order."""
    return tuple(block for block in fenced_blocks(document)
                 if block.language in SHELL_LANGUAGES and (block.marker is None or block.marker[0] == "run"))


@pytest.fixture(scope="module")
def documents(world, tmp_path_factory) -> Documents:
    return Documents(world, tmp_path_factory.mktemp("documents"))


@pytest.mark.parametrize("block", [case(block) for block in shell_blocks()])
def test_documented_block_runs_as_written(block, documents):
    check(block, documents.run(block))
