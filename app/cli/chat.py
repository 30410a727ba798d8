"""``medzoo chat``: a multi-turn conversation in the terminal, answers streamed as they are generated."""

from __future__ import annotations

import click

HELP = "commands: /image PATH (new image, new conversation), /reset, /help, /quit"


def open_image(path: str):
    """The RGB image at ``path``, decoded in full; a missing, unreadable, non-image, truncated or over-large
    (decompression bomb: more pixels than PIL's ``MAX_IMAGE_PIXELS``) file raises a one-line DataError."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from medzoo.core.checked_reads import first_line
    from medzoo.core.errors import DataError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"cannot open image {path!r}: more pixels than the limit of {Image.MAX_IMAGE_PIXELS} "
            f"(a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise DataError(f"cannot open image {path!r}: not an image file PIL can read") from None
    except OSError as error:
        raise DataError(f"cannot open image {path!r}: {error.strerror or first_line(error)}") from None
    except (ValueError, SyntaxError) as error:
        raise DataError(f"cannot open image {path!r}: {first_line(error)}") from None


class ChatSession:
    """The conversation so far and the image it is about."""

    def __init__(self, engine, settings, system: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.system = system
        self.image = None
        self.turns: list = []

    def reset(self) -> None:
        self.turns = []

    def set_image(self, path: str) -> None:
        """Use the image at ``path`` (a new conversation); an unusable one raises a one-line DataError."""
        self.image = open_image(path)
        self.reset()

    def ask(self, question: str, on_text) -> str:
        from medzoo.core.inference import RowRequest
        from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message

        if not self.turns and self.image is not None:
            question = f"{IMAGE_PLACEHOLDER}\n{question}"
        messages = [Message("system", self.system)] if self.system else []
        messages += [*self.turns, Message("user", question)]
        images = [self.image] if self.image is not None else []
        sample = self.engine.encode(messages, images)
        completion = self.engine.run([RowRequest(sample, self.settings, on_text=on_text)])[0]
        self.turns += [Message("user", question), Message("assistant", completion.text)]
        return completion.text


@click.command("chat")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None, help="Image to talk about.")
@click.option("--temperature", default=0.0, show_default=True, help="0 = greedy decoding.")
@click.option("--top-p", default=1.0, show_default=True)
@click.option("--max-new-tokens", default=256, show_default=True, type=click.IntRange(1))
@click.option("--seed", type=int, default=None)
@click.option("--system", default=None, help="System message (when the template uses one).")
@click.option("--device", default="auto", show_default=True)
def chat_command(model_dir, image, temperature, top_p, max_new_tokens, seed, system, device) -> None:
    """Chat with the model in MODEL_DIR; reads questions from stdin until EOF or /quit."""
    from medzoo.app.serving.loading import load_engine
    from medzoo.core.inference import SamplingSettings

    if not 0 < top_p <= 1 or temperature < 0 or max_new_tokens < 1:
        raise click.BadParameter("need temperature >= 0, 0 < top-p <= 1, max-new-tokens >= 1")
    first_image = open_image(image) if image else None  # a bad --image fails before the model loads
    engine = load_engine(model_dir, device=device)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    session = ChatSession(engine, settings, system)
    session.image = first_image
    stdin = click.get_text_stream("stdin")
    click.echo(f"medzoo chat ({engine.processor.template.name} template). {HELP}")
    while True:
        click.echo("USER> ", nl=False)
        line = stdin.readline()
        if not line:
            click.echo()
            break
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if text:
            _handle(session, text)


def _handle(session: ChatSession, text: str) -> None:
    """Run one command or ask one question (answer streamed to stdout)."""
    from medzoo.core.errors import MedzooError

    if text == "/help":
        click.echo(HELP)
    elif text == "/reset":
        session.reset()
        click.echo("(conversation cleared)")
    elif text.startswith("/image"):
        path = text[len("/image"):].strip()
        try:
            session.set_image(path)
            click.echo(f"(image {path}; new conversation)")
        except MedzooError as error:
            click.echo(f"error: {error}", err=True)
    elif text.startswith("/"):
        click.echo(f"unknown command {text.split()[0]!r}; {HELP}", err=True)
    else:
        click.echo("ASSISTANT> ", nl=False)
        try:
            session.ask(text, on_text=lambda piece: click.echo(piece, nl=False))
        except (MedzooError, ValueError) as error:
            click.echo(f"\nerror: {str(error).splitlines()[0]}", err=True)
            return
        except KeyboardInterrupt:
            click.echo("\n(interrupted)")
            return
        click.echo()
