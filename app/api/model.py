"""``medzoo.load``: a medzoo model from a run folder, a model folder or a published variant, and ``Model.ask``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from medzoo.app.api.inputs import as_image, sampling_settings, user_turn
from medzoo.core.errors import DataError, MedzooError

if TYPE_CHECKING:
    from medzoo.app.api.chat import Chat
    from medzoo.core.inference import InferenceEngine, SamplingSettings
    from medzoo.core.model.multimodal import MultimodalModel

MANIFEST = "medzoo_model.json"  # core/model/persistence.py
RUN_MARKER = "medzoo_run.json"  # core/training/run_folder.py


def model_folder(source: str | Path, echo=print) -> Path:
    """The medzoo model folder ``source`` names: a model folder, a run folder's ``final/``, or a registry
    variant's published weights (imported on first use, which downloads them)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return path
        if (path / "final" / MANIFEST).is_file():
            return path / "final"
        if (path / RUN_MARKER).is_file():
            raise MedzooError(f"{path}: a run folder without a final model (final/{MANIFEST}); finish its training "
                              f"with `medzoo train RECIPE --output-dir {path} --resume`")
        raise MedzooError(f"{path}: not a medzoo model folder (no {MANIFEST}) nor a run folder holding final/")
    if path.exists():
        raise MedzooError(f"{path}: a file; expected a model folder, a run folder or a registry variant name")
    from medzoo.app.interop.published_weights import resolve_model

    return resolve_model(str(source), echo=echo)


class Model:
    """A loaded medzoo model that answers questions about images (``medzoo.load`` returns one).

    ``model.model`` is the :class:`~medzoo.core.model.multimodal.MultimodalModel` itself; answers come from the
    :class:`~medzoo.core.inference.InferenceEngine` evaluation, chat and serving share.
    """

    def __init__(self, model: MultimodalModel, directory: Path | None = None, template: str | None = None) -> None:
        self.model = model
        self.directory = directory
        self.template = template
        self._engine: InferenceEngine | None = None

    @property
    def name(self) -> str:
        """The model's name in answer files (its folder's name, a run's name for ``final/``)."""
        if self.directory is None:
            return "model"
        return self.directory.parent.name if self.directory.name == "final" else self.directory.name

    @property
    def engine(self) -> InferenceEngine:
        if self._engine is None:
            from medzoo.core.inference import InferenceEngine

            self._engine = InferenceEngine(self.model, self.template)
        return self._engine

    def to(self, device: str) -> Model:
        """Move the model to ``device`` (``cpu``, ``cuda``, ``cuda:1``, ``auto``)."""
        from medzoo.app.serving.loading import resolve_device

        self.model.to(resolve_device(device))
        self._engine = None
        return self

    @overload
    def ask(self, image: Any, question: str, *, batch_size: int = ..., **sampling: Any) -> str: ...

    @overload
    def ask(self, image: Sequence[Any], question: Sequence[str], *, batch_size: int = ..., **sampling: Any
            ) -> list[str]: ...

    def ask(self, image: Any, question: str | Sequence[str], *, batch_size: int = 16, **sampling: Any
            ) -> str | list[str]:
        """Answer ``question`` about ``image`` (a PIL image, a path, or None); with lists of images and questions
        (same length) answer them all, batched. ``sampling``: ``max_new_tokens`` (256), ``temperature`` (0:
        greedy), ``top_p``, ``stop`` (strings), ``seed``."""
        settings = sampling_settings(sampling)
        if isinstance(question, str) or not isinstance(question, Sequence):
            return self._answer([image], [question], settings, batch_size)[0]
        if isinstance(image, str | Path) or not isinstance(image, Sequence):
            raise DataError("ask: with a list of questions, pass a list of images of the same length (None: no image)")
        if len(image) != len(question):
            raise DataError(f"ask: {len(image)} images for {len(question)} questions; expected one image per question")
        return self._answer(list(image), list(question), settings, batch_size)

    def _answer(self, images: list[Any], questions: list[Any], settings: SamplingSettings, batch_size: int
                ) -> list[str]:
        from medzoo.core.inference import ChatRequest
        from medzoo.core.interfaces.conversation import Message

        requests = []
        for index, (image, question) in enumerate(zip(images, questions, strict=True)):
            where = f"question {index}" if len(questions) > 1 else "question"
            picture = as_image(image, where.replace("question", "image"))
            requests.append(ChatRequest([Message("user", user_turn(question, picture is not None, where))], picture))
        try:
            completions = self.engine.answer(requests, settings, batch_size=batch_size)
        except ValueError as error:  # a conversation the template or the image markup cannot encode
            raise DataError(f"ask: {str(error).splitlines()[0]}") from None
        return [completion.text for completion in completions]

    def chat(self, image: Any = None, system: str | None = None, **sampling: Any) -> Chat:
        """A multi-turn conversation about ``image``: ``chat.ask(question)`` answers with the turns so far."""
        from medzoo.app.api.chat import Chat

        return Chat(self.engine, as_image(image), sampling_settings(sampling), system)

    def evaluate(self, benchmark: str, output_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
        """``medzoo.evaluate(self, benchmark, output_dir, ...)``."""
        from medzoo.app.api.evaluation import evaluate_weights

        return evaluate_weights(self.model, self.name, self.directory, benchmark, output_dir, **options)

    def __repr__(self) -> str:
        spec = self.model.spec
        parts = " -> ".join(str((spec.get(part) or {}).get("name", "?")) for part in ("vision", "connector", "language"))
        return f"<medzoo.Model {self.name}: {parts} from {self.directory}>"


def load(source: str | Path, *, device: str = "auto", dtype: str | None = None, template: str | None = None,
         echo=print) -> Model:
    """Load a medzoo model: a run folder (its ``final/``), a model folder, an imported folder, or a variant of
    ``registry.yaml`` with published weights (imported on first use: that downloads them). ``device``: ``auto``
    (a GPU when there is one), ``cpu``, ``cuda[:N]``; ``dtype`` overrides the saved one; ``template`` the
    conversation template questions are asked in (default: the model's)."""
    from medzoo.app.serving.loading import resolve_device
    from medzoo.core.model.multimodal import MultimodalModel

    directory = model_folder(source, echo)
    model = MultimodalModel.from_pretrained(str(directory), dtype=dtype).to(resolve_device(device))
    return Model(model, directory, template)
