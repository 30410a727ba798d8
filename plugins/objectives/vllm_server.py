"""A vLLM server started with ``trl vllm-serve`` (TRL 1.16.0: ``vllm serve`` with the NCCL weight-transfer
engine and ``VLLM_SERVER_DEV_MODE=1``), spoken to as TRL 1.16.0's ``trl/generation/vllm_client.py`` does.

- ``GET /health``, ``GET /v1/models`` (the served model's id), ``GET /server_info?config_format=json`` (its
  ``weight_transfer_config`` must be set), ``GET /get_world_size``;
- generation from token ids: ``POST /v1/completions`` (``prompt``: the ids) for a prompt without an image;
  with an image, ``POST /v1/chat/completions/render`` turns the image alone into ``features``, whose image
  placeholder is then pointed at the prompt's run of image tokens, and ``POST /inference/v1/generate`` samples
  from ``token_ids`` + ``features`` (vLLM >= 0.30 with ``--enable-scale-out``, which ``trl vllm-serve`` passes);
- weights: ``POST /init_weight_transfer_engine`` while this process opens the NCCL group (vLLM's
  ``trainer_init``), then per sync ``POST /start_weight_update``, ``POST /update_weights`` (names, dtypes,
  shapes) while the tensors are broadcast in that order (vLLM's ``packed_nccl_broadcast_producer``),
  ``POST /finish_weight_update`` and ``POST /reset_prefix_cache``.

HTTP goes through the standard library; the NCCL side needs vLLM in this process and a CUDA device, as TRL's does.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from medzoo import TrainingError

#: TRL's group port default (``VLLMClient(group_port=51216)``)
DEFAULT_GROUP_PORT = 51216
#: vLLM's ``RequestOutputKind.FINAL_ONLY``, as TRL asks for it
FINAL_ONLY = 2


class VllmServer:
    """One ``trl vllm-serve`` server: health-checked and its model id read on construction."""

    def __init__(self, base_url: str, timeout_s: float, group_port: int = DEFAULT_GROUP_PORT) -> None:
        self.base_url = base_url.rstrip("/")
        self.group_port = group_port
        self.communicator: Any = None
        self.wait_until_up(timeout_s)
        self.model = self.get("/v1/models")["data"][0]["id"]

    # ---------------------------------------------------------------- HTTP

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as response:  # noqa: S310 - the recipe's server URL
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise TrainingError(f"vLLM server {self.base_url}: {method} {path} answered {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise TrainingError(f"vLLM server {self.base_url}: {method} {path} failed: {error.reason}") from None
        return json.loads(text) if text.strip() else {}

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body)

    def wait_until_up(self, timeout_s: float, interval_s: float = 2.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/health") as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise TrainingError(f"rollouts.base_url: no vLLM server answers at {self.base_url}/health after "
                                    f"{timeout_s:g} s; start one with `trl vllm-serve --model <hf-llava export>`")
            time.sleep(interval_s)

    # ---------------------------------------------------------------- generation

    def image_features(self, image_url: str) -> dict[str, Any]:
        """The server's processed image (``features``), independent of the tokens it is paired with."""
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}}]}]
        return self.post("/v1/chat/completions/render",
                         {"model": self.model, "messages": messages, "max_tokens": 1})["features"]

    def complete(self, token_ids: list[int], features: dict[str, Any] | None,
                 sampling: dict[str, Any]) -> dict[str, Any]:
        """One completion (``sampling["n"]`` is 1) as ``{"token_ids", "finish_reason"}``."""
        if features is None:
            body = {"model": self.model, "prompt": token_ids, "return_token_ids": True, **sampling}
            choice = self.post("/v1/completions", body)["choices"][0]
        else:
            body = {"request_id": f"medzoo-{uuid.uuid4().hex}", "model": self.model, "token_ids": token_ids,
                    "features": features, "sampling_params": {**sampling, "output_kind": FINAL_ONLY}}
            choice = self.post("/inference/v1/generate", body)["choices"][0]
        return {"token_ids": list(choice["token_ids"]), "finish_reason": choice.get("finish_reason")}

    # ---------------------------------------------------------------- weights

    def open_weight_transfer(self, device: torch.device) -> None:
        """Join the server's NCCL group as rank 0 (once)."""
        if self.communicator is not None:
            return
        from vllm.distributed.weight_transfer.nccl_common import trainer_init
        from vllm.utils.network_utils import get_ip

        if self.get("/server_info?config_format=json")["vllm_config"].get("weight_transfer_config") is None:
            raise TrainingError(f"vLLM server {self.base_url} has no weight-transfer engine: start it with "
                                "`trl vllm-serve` (or vllm serve --weight-transfer-config '{\"backend\": \"nccl\"}')")
        bind_cuda(device)
        info = {"master_address": get_ip(), "master_port": self.group_port, "rank_offset": 1,
                "world_size": self.get("/get_world_size")["world_size"] + 1, "packed": True}
        with ThreadPoolExecutor(max_workers=1) as pool:
            joined = pool.submit(self.post, "/init_weight_transfer_engine", {"init_info": info})
            self.communicator = trainer_init(info)
            joined.result()

    def send_weights(self, metadata: list[tuple[str, str, list[int]]],
                     tensors: Iterator[tuple[str, torch.Tensor]]) -> None:
        """Announce (name, dtype, shape) of every tensor, then broadcast them in that order."""
        from vllm.distributed.weight_transfer.packed_tensor import packed_nccl_broadcast_producer

        names, dtypes, shapes = (list(column) for column in zip(*metadata, strict=True))
        self.post("/start_weight_update", {})
        with ThreadPoolExecutor(max_workers=1) as pool:
            received = pool.submit(self.post, "/update_weights",
                                   {"update_info": {"names": names, "dtype_names": dtypes, "shapes": shapes}})
            packed_nccl_broadcast_producer(iterator=tensors, group=self.communicator, src=0,
                                           post_iter_func=lambda item: item[1])
            received.result()
        self.post("/finish_weight_update", {})
        self.post("/reset_prefix_cache", {})

    def close(self) -> None:
        if self.communicator is not None:
            group = getattr(self.communicator, "group", None)
            if group is not None:  # as TRL's close_communicator: drop the store and socket
                group.store = None
                group.socket = None
            self.communicator = None


def place_features(features: dict[str, Any], prompt_ids: list[int], image_token_id: int) -> dict[str, Any]:
    """``features`` with its image placeholder pointed at the run of image tokens in ``prompt_ids`` (the server
    reports where the image sat in the throwaway conversation it was rendered in; TRL 1.16.0's
    ``VLLMGeneration._place_features`` does the same)."""
    runs = []
    offset = 0
    while offset < len(prompt_ids):
        if prompt_ids[offset] != image_token_id:
            offset += 1
            continue
        length = 0
        while offset + length < len(prompt_ids) and prompt_ids[offset + length] == image_token_id:
            length += 1
        runs.append({"offset": offset, "length": length})
        offset += length
    expected = len(features["mm_placeholders"]["image"])
    if len(runs) != expected:
        raise TrainingError(f"the prompt holds {len(runs)} run(s) of image tokens but the vLLM server processed "
                            f"{expected} image(s)")
    return {**features, "mm_placeholders": {**features["mm_placeholders"], "image": runs}}


def bind_cuda(device: torch.device) -> None:
    """Make ``device`` (the policy's) the current CUDA device, the NCCL group's end on this side."""
    if device.type != "cuda":
        raise TrainingError(f"vLLM's weight transfer runs over NCCL and needs the policy on a CUDA device, not {device}")
    torch.cuda.set_device(device)
