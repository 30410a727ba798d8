"""GRPO's rollouts on vLLM: ``objective: {name: grpo, rollouts: {backend: vllm, mode: colocate | server, ...}}``.

vLLM serves the policy as llava-hf (``LlavaForConditionalGeneration``): ``colocate`` builds an in-process
``vllm.LLM`` on the training GPU from ``model`` (an hf-llava export of the policy's architecture, ``medzoo export
--format hf-llava``); ``server`` talks to a ``trl vllm-serve`` server at ``base_url`` with TRL 1.16.0's protocol
(``vllm_server``). The policy's weights are sent under their llava-hf names, LoRA merged (``vllm_weights``): all
of them before the first rollout, then after each optimizer step those training changes.

A request's prompt is the token ids the objective encoded (``RolloutRequest.prompt``), so vLLM samples after
exactly the ids the loss scores; without one the messages are rendered with the model's conversation template.
Either way the image placeholder is expanded to the image's tokens, as llava-hf's ``LlavaProcessor`` expands
``<image>`` (vLLM recognises the expanded run and fills it with the image, passed as ``multi_modal_data``). Completion ``k`` is its own vLLM request with
``n=1`` and ``seed = request.seed + k``, so it does not depend on how vLLM numbers the children of an ``n > 1``
request. The text is the ids decoded and cut at the template's first stop string, as medzoo's engine does.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medzoo import (
    RolloutBackend,
    RolloutCompletion,
    RolloutRequest,
    TrainingError,
    processor_for,
    safetensors_shapes,
)
from medzoo.plugins.objectives.vllm_server import DEFAULT_GROUP_PORT, VllmServer, place_features
from medzoo.plugins.objectives.vllm_weights import OutgoingTensor, outgoing_tensors, stream

MODES = ("colocate", "server")
#: option -> default (``None``: required for its mode or optional)
OPTIONS: dict[str, Any] = {
    "backend": "vllm", "mode": "colocate", "template": None,
    # colocate
    "model": None, "gpu_memory_utilization": 0.3, "max_model_len": None, "dtype": "auto", "enforce_eager": False,
    # server
    "base_url": "http://localhost:8000", "server_timeout": 240.0, "group_port": DEFAULT_GROUP_PORT,
}
KEY = "rollouts"
#: completions requested from a server at the same time (TRL 1.16.0's ``_DEFAULT_GENERATION_CONCURRENCY``)
CONCURRENT_REQUESTS = 64


@dataclass(frozen=True)
class VllmOptions:
    mode: str = "colocate"
    template: str | None = None
    model: Path | None = None
    gpu_memory_utilization: float = 0.3
    max_model_len: int | None = None
    dtype: str = "auto"
    enforce_eager: bool = False
    base_url: str = "http://localhost:8000"
    server_timeout: float = 240.0
    group_port: int = DEFAULT_GROUP_PORT

    @classmethod
    def parse(cls, options: dict[str, Any]) -> VllmOptions:
        """Checked options, or ``ValueError`` (one line) naming the key (``rollouts.<option>``), the value and what
        was expected (the objective puts ``stages.<name>.objective.`` before it, as for its other options)."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"{KEY}.{unknown[0]}: unknown option of backend 'vllm'; expected one of "
                              f"{', '.join(sorted(OPTIONS))}")
        values = {**{key: value for key, value in OPTIONS.items() if key != "backend"}, **options}
        values.pop("backend", None)
        mode = values["mode"]
        if mode not in MODES:
            raise ValueError(f"{KEY}.mode: {mode!r}; expected one of {', '.join(MODES)}")
        utilisation = values["gpu_memory_utilization"]
        if isinstance(utilisation, bool) or not isinstance(utilisation, int | float) or not 0 < utilisation <= 1:
            raise ValueError(f"{KEY}.gpu_memory_utilization: {utilisation!r}; expected a number in (0, 1]")
        length = values["max_model_len"]
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise ValueError(f"{KEY}.max_model_len: {length!r}; expected a positive integer")
        timeout = values["server_timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError(f"{KEY}.server_timeout: {timeout!r}; expected a number of seconds >= 0")
        if not isinstance(values["base_url"], str) or not values["base_url"].startswith(("http://", "https://")):
            raise ValueError(f"{KEY}.base_url: {values['base_url']!r}; expected an http:// or https:// URL")
        model = values["model"]
        if mode == "colocate":
            if model is None:
                raise ValueError(f"{KEY}.model: missing; mode colocate builds vLLM from an hf-llava export of the "
                                  "policy (medzoo export <model dir> <folder> --format hf-llava)")
            model = Path(model)
            if not (model / "config.json").is_file():
                raise ValueError(f"{KEY}.model: {str(model)!r} holds no config.json; expected an hf-llava export "
                                  "folder (medzoo export --format hf-llava)")
        values["model"] = None if model is None else Path(model)
        return cls(**values)


def missing_requirements() -> list[str]:
    """What this machine lacks to run vLLM: the package, a CUDA GPU (empty: nothing)."""
    import importlib.util

    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("no vllm package")
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU")
    return missing


def vllm_rollouts(options: dict[str, Any]) -> VllmRollouts:
    """The vLLM rollout backend for a stage's ``rollouts`` options; ``ValueError`` (one line) for a bad option or
    where vLLM cannot run here."""
    parsed = VllmOptions.parse(dict(options))
    missing = missing_requirements()
    if missing:
        has = "neither" if len(missing) == 2 else missing[0]
        raise ValueError(f"{KEY}.backend: 'vllm' needs the vllm package and a CUDA GPU; this machine has {has}: "
                          "install vllm on a GPU machine or use backend: engine")
    return VllmRollouts(parsed)


@dataclass(frozen=True)
class Prompt:
    """One vLLM request: prompt ids (image tokens expanded), the image and the sampling parameters."""

    token_ids: list[int]
    image: Any
    sampling: dict[str, Any]


class VllmRollouts(RolloutBackend):
    """Rollouts from vLLM (colocated ``vllm.LLM`` or a ``trl vllm-serve`` server), weights synchronised after
    each optimizer step."""

    name = "vllm"

    def __init__(self, options: VllmOptions) -> None:
        self.options = options
        self.engine: Any = None
        self.synced_once = False
        self._processor: Any = None

    # ---------------------------------------------------------------- the engine

    def start(self) -> Any:
        """The colocated LLM or the server connection (built on first use)."""
        if self.engine is None:
            self.engine = ColocatedLlm(self.options) if self.options.mode == "colocate" else ServedLlm(self.options)
        return self.engine

    # ---------------------------------------------------------------- requests

    def processor(self, model: Any) -> Any:
        if self._processor is None or self._processor.tokenizer is not model.tokenizer:
            self._processor = processor_for(model, self.options.template)
        return self._processor

    def build_prompts(self, model: Any, requests: Sequence[RolloutRequest]) -> list[Prompt]:
        """One prompt per completion: request order, then ``k``; completion ``k`` seeded ``seed + k``."""
        if model.markup.kind != "placeholder":
            raise TrainingError("rollouts on vLLM need the <image> placeholder markup; the <im_start>/<im_patch>/"
                                "<im_end> markup (LLaVA-Med v1.0) has no llava-hf form: use backend: engine")
        processor = self.processor(model)
        stops = stop_settings(model, processor)
        prompts = []
        for request in requests:
            image = load_image(request.image) if request.image is not None else None
            encoded = getattr(request, "prompt", None)  # the objective's own encoding, which its loss scores
            if encoded is None:
                encoded = processor.encode_text(request.messages, 0 if image is None else 1,
                                                add_generation_prompt=True, sample_id=request.prompt_id)
            ids = list(encoded.input_ids)
            for k in range(request.count):
                sampling = {"n": 1, "seed": request.seed + k, "temperature": request.temperature,
                            "top_p": request.top_p, "max_tokens": request.max_new_tokens, **stops}
                prompts.append(Prompt(list(ids), image, sampling))
        return prompts

    def generate(self, model: Any, requests: Sequence[RolloutRequest]) -> list[list[RolloutCompletion]]:
        if not self.synced_once:
            self.sync_weights(model)
        prompts = self.build_prompts(model, requests)
        outputs = self.start().generate(model, prompts)
        processor = self.processor(model)
        completions = iter(completion(model, processor, token_ids, reason) for token_ids, reason in outputs)
        return [[next(completions) for _ in range(request.count)] for request in requests]

    # ---------------------------------------------------------------- weights

    def sync_weights(self, model: Any) -> None:
        """Send the policy's weights (all of them the first time, then those training changes)."""
        tensors = outgoing_tensors(model, trained_only=self.synced_once)
        engine = self.start()
        if not self.synced_once:
            engine.check_names(tensors)
        engine.load(model, tensors)
        self.synced_once = True

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def describe(self) -> dict[str, Any]:
        where = {"model": str(self.options.model)} if self.options.mode == "colocate" else {
            "base_url": self.options.base_url}
        return {"name": self.name, "mode": self.options.mode, **where,
                "protocol": "TRL 1.16.0 vllm-serve" if self.options.mode == "server" else "vllm.LLM in process"}


# ------------------------------------------------------------------------------------------------ the two modes


class ColocatedLlm:
    """An in-process ``vllm.LLM`` on this GPU, as TRL 1.16.0's colocate mode builds it (``external_launcher``:
    the engine runs in this process, so its model's ``load_weights`` is reachable)."""

    def __init__(self, options: VllmOptions) -> None:
        from vllm import LLM

        for variable, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                                ("MASTER_ADDR", "localhost"), ("MASTER_PORT", "29533")):
            os.environ.setdefault(variable, value)
        self.folder = options.model
        self.llm = LLM(model=str(options.model), gpu_memory_utilization=options.gpu_memory_utilization,
                       max_model_len=options.max_model_len, dtype=options.dtype, enforce_eager=options.enforce_eager,
                       distributed_executor_backend="external_launcher", seed=0, limit_mm_per_prompt={"image": 1})

    def generate(self, model: Any, prompts: list[Prompt]) -> list[tuple[list[int], str | None]]:
        from vllm import SamplingParams

        inputs = []
        for prompt in prompts:
            row: dict[str, Any] = {"prompt_token_ids": prompt.token_ids}
            if prompt.image is not None:
                row["multi_modal_data"] = {"image": prompt.image}
            inputs.append(row)
        params = [SamplingParams(**prompt.sampling) for prompt in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [(list(output.outputs[0].token_ids), output.outputs[0].finish_reason) for output in outputs]

    def check_names(self, tensors: list[OutgoingTensor]) -> None:
        """The export vLLM was built from holds every tensor sent, with its shape."""
        check_against_export(self.folder, tensors)

    def load(self, model: Any, tensors: list[OutgoingTensor]) -> None:
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        for name, value in stream(tensors):
            runner.model.load_weights([(name, value)])
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        self.llm = None


class ServedLlm:
    """A ``trl vllm-serve`` server (``vllm_server``)."""

    def __init__(self, options: VllmOptions) -> None:
        self.server = VllmServer(options.base_url, options.server_timeout, options.group_port)

    def generate(self, model: Any, prompts: list[Prompt]) -> list[tuple[list[int], str | None]]:
        """Each image processed once, then every completion requested at the same time (as TRL does, up to
        ``CONCURRENT_REQUESTS``); the answers come back in prompt order."""
        features: dict[int, dict[str, Any]] = {}
        for prompt in prompts:
            if prompt.image is not None and id(prompt.image) not in features:
                features[id(prompt.image)] = self.server.image_features(data_url(prompt.image))

        def send(prompt: Prompt) -> tuple[list[int], str | None]:
            placed = None if prompt.image is None else place_features(
                features[id(prompt.image)], prompt.token_ids, model.markup.placeholder_id)
            choice = self.server.complete(prompt.token_ids, placed, prompt.sampling)
            ids = choice["token_ids"]
            # an endpoint that leaves finish_reason out: the budget spent means "length"
            return ids, choice["finish_reason"] or ("length" if len(ids) >= prompt.sampling["max_tokens"] else "stop")

        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(CONCURRENT_REQUESTS, len(prompts))) as pool:
            return list(pool.map(send, prompts))

    def check_names(self, tensors: list[OutgoingTensor]) -> None:
        return None  # the server's files are not ours to read; vLLM refuses an unknown name itself

    def load(self, model: Any, tensors: list[OutgoingTensor]) -> None:
        if not tensors:
            return
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise TrainingError("rollouts.mode: server syncs the weights from one process (the NCCL group has one "
                                "trainer rank); under DDP use mode: colocate")
        self.server.open_weight_transfer(next(model.parameters()).device)
        metadata = [(tensor.name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)) for tensor in tensors]
        self.server.send_weights(metadata, stream(tensors))

    def close(self) -> None:
        self.server.close()


# ------------------------------------------------------------------------------------------------ helpers


def stop_settings(model: Any, processor: Any) -> dict[str, Any]:
    """vLLM's stops as medzoo's engine stops: the tokenizer's EOS and the template's stop strings."""
    eos = model.tokenizer.eos_token_id
    stops = [stop for stop in processor.template.stop_strings if stop]
    return {"stop_token_ids": [] if eos is None else [eos], "stop": stops}


def completion(model: Any, processor: Any, token_ids: list[int], reason: str | None) -> RolloutCompletion:
    """A completion as medzoo's engine reports it: text decoded, cut at the first stop string, stripped."""
    text = model.tokenizer.decode(token_ids, skip_special_tokens=True)
    cuts = [index for stop in processor.template.stop_strings if stop and (index := text.find(stop)) >= 0]
    if cuts:
        text = text[:min(cuts)]
    if reason not in ("stop", "length"):
        raise TrainingError(f"vLLM ended a rollout with finish_reason {reason!r}; expected 'stop' or 'length'")
    return RolloutCompletion(tuple(token_ids), text.strip(), reason)


def load_image(path: Path) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise TrainingError(f"{path}: cannot be read as an image for a rollout ({error})") from None


def data_url(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def check_against_export(folder: Path, tensors: list[OutgoingTensor]) -> None:
    """Every tensor sent is in the export's safetensors with the same shape (else vLLM would load it wrongly or
    not at all): one line naming the folder and the first tensor that does not fit."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        shapes.update(safetensors_shapes(file))
    for tensor in tensors:
        if tensor.name not in shapes:
            raise TrainingError(f"{folder}: the hf-llava export vLLM was built from has no tensor {tensor.name!r}; "
                                "export the policy's own architecture (medzoo export --format hf-llava)")
        if tuple(shapes[tensor.name]) != tensor.shape:
            raise TrainingError(f"{folder}: tensor {tensor.name!r} has shape {tuple(shapes[tensor.name])} in the "
                                f"export vLLM was built from, the policy's is {tensor.shape}")
