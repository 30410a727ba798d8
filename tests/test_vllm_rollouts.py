"""GRPO's vLLM rollout backend with vLLM's side replaced by recorders (vLLM is not a test dependency).

- colocate: a fake ``vllm`` module in ``sys.modules`` whose ``LLM`` records its construction, the prompts and
  sampling parameters of ``generate`` and every ``(name, tensor)`` its model's ``load_weights`` receives;
- server: a local HTTP server in a thread answering TRL 1.16.0's endpoints (``trl/generation/vllm_client.py``) and
  recording every request, plus fake vLLM NCCL functions recording the tensors broadcast.

What is checked: the weights sent are the hf-llava export of the tiny model (LoRA merged: the export of the merged
model; the policy unchanged afterwards); after the first sync only the trained tensors go; each request's prompt is
the llava-hf prompt (transformers' ``LlavaProcessor`` on the export, chat template and image expansion) and its
completions are seeded ``seed + k`` with the request's temperature, top-p and budget; the one-line refusals.
"""

from __future__ import annotations

import copy
import importlib.machinery
import json
import sys
import threading
import types
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from medzoo.app.interop.hf_llava_export import export_hf_llava
from medzoo.core.checked_reads import read_safetensors
from medzoo.core.errors import MedzooError, TrainingError
from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.rollout_backend import RolloutRequest
from medzoo.core.model.build import build_model
from medzoo.plugins.objectives import vllm_server
from medzoo.plugins.objectives.vllm_rollouts import vllm_rollouts
from medzoo.plugins.objectives.vllm_switch import check_vllm_options, vllm_backend
from medzoo.plugins.tuning.lora import LoraTuning
from medzoo.testing import TINY_MODEL

QUESTION = "Which organ is shown?"


# ------------------------------------------------------------------------------------------------ fixtures


def tiny_policy(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(copy.deepcopy(TINY_MODEL)).eval()


def exported_tensors(model, folder: Path) -> dict[str, torch.Tensor]:
    """What ``medzoo export --format hf-llava`` writes for ``model`` (a copy is exported: it merges in place)."""
    export_hf_llava(copy.deepcopy(model), folder)
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(read_safetensors(file, MedzooError, "the export"))
    return tensors


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """The tiny policy and its hf-llava export (the folder colocated vLLM is built from)."""
    folder = tmp_path_factory.mktemp("hf-llava")
    model = tiny_policy()
    return model, folder, exported_tensors(model, folder)


@pytest.fixture
def image_file(tmp_path, export) -> Path:
    side = export[0].vision.image_size
    path = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    return path


class FakeLlm:
    """``vllm.LLM``: records its options, its prompts and sampling parameters, and the weights loaded."""

    built: list[FakeLlm] = []

    def __init__(self, **options):
        self.options = options
        self.loaded: list[tuple[str, torch.Tensor]] = []
        self.generated: list[tuple[dict, dict]] = []
        self.prefix_resets = 0
        model = types.SimpleNamespace(load_weights=self._load)
        runner = types.SimpleNamespace(model=model)
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
            driver_worker=types.SimpleNamespace(model_runner=runner)))
        FakeLlm.built.append(self)

    def _load(self, weights):
        self.loaded += [(name, tensor.detach().clone()) for name, tensor in weights]

    def reset_prefix_cache(self):
        self.prefix_resets += 1

    def generate(self, inputs, params, use_tqdm=True):
        outputs = []
        for row, sampling in zip(inputs, params, strict=True):
            self.generated.append((row, sampling.kwargs))
            ids, reason = fake_completion(sampling.kwargs["seed"], sampling.kwargs["max_tokens"])
            outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids, finish_reason=reason)]))
        return outputs


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def fake_completion(seed: int, max_tokens: int) -> tuple[list[int], str]:
    """A reply that depends on the seed (even seeds stop, odd ones use the whole budget)."""
    length = 2 if seed % 2 == 0 else max_tokens
    return [100 + (seed * 7 + i) % 50 for i in range(length)], "stop" if seed % 2 == 0 else "length"


def install_fake_vllm(monkeypatch, **submodules) -> types.ModuleType:
    package = types.ModuleType("vllm")
    package.__spec__ = importlib.machinery.ModuleSpec("vllm", None, is_package=True)
    package.LLM, package.SamplingParams = FakeLlm, FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", package)
    for name, attributes in submodules.items():
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    FakeLlm.built.clear()
    return package


def assert_same_tensors(sent: list[tuple[str, torch.Tensor]], expected: dict[str, torch.Tensor]) -> None:
    names = [name for name, _ in sent]
    assert len(names) == len(set(names)), "a tensor was sent twice"
    assert set(names) == set(expected)
    for name, tensor in sent:
        assert tensor.dtype == expected[name].dtype and torch.equal(tensor, expected[name]), name


# ------------------------------------------------------------------------------------------------ colocate


def test_colocate_builds_vllm_from_the_export_and_sends_the_policy_as_the_export_holds_it(monkeypatch, export):
    model, folder, expected = export
    install_fake_vllm(monkeypatch)
    backend = vllm_rollouts({"backend": "vllm", "mode": "colocate", "model": str(folder),
                             "gpu_memory_utilization": 0.25, "max_model_len": 512})
    backend.sync_weights(model)
    [llm] = FakeLlm.built
    assert llm.options["model"] == str(folder) and llm.options["gpu_memory_utilization"] == 0.25
    assert llm.options["max_model_len"] == 512 and llm.options["distributed_executor_backend"] == "external_launcher"
    assert_same_tensors(llm.loaded, expected)
    assert llm.prefix_resets == 1
    assert backend.describe()["mode"] == "colocate"


def test_after_the_first_sync_only_the_trained_tensors_are_sent(monkeypatch, export):
    model, folder, expected = export
    install_fake_vllm(monkeypatch)
    policy = copy.deepcopy(model)
    policy.requires_grad_(False)
    policy.connector.requires_grad_(True)  # a stage training the projector only
    backend = vllm_rollouts({"mode": "colocate", "model": str(folder)})
    backend.sync_weights(policy)
    [llm] = FakeLlm.built
    assert len(llm.loaded) == len(expected)  # the first sync: everything (vLLM holds the export's weights)
    with torch.no_grad():
        for parameter in policy.connector.parameters():
            parameter.add_(0.5)
    llm.loaded.clear()
    backend.sync_weights(policy)
    moved = {name: tensor for name, tensor in exported_tensors(policy, folder.parent / "moved").items()
             if name.startswith("multi_modal_projector.")}
    assert_same_tensors(llm.loaded, moved)
    assert not torch.equal(moved["multi_modal_projector.linear_1.weight"],
                           expected["multi_modal_projector.linear_1.weight"])


def test_lora_is_sent_merged_and_the_policy_keeps_its_adapters(monkeypatch, export, tmp_path):
    model, folder, base = export
    install_fake_vllm(monkeypatch)
    policy = copy.deepcopy(model)
    policy.requires_grad_(False)  # a LoRA stage: the tower and the projector frozen
    LoraTuning(r=4, alpha=8, target_modules=["q_proj", "v_proj"]).apply(policy.language.model, "language")
    LoraTuning(r=2, alpha=4).apply(policy.connector, "connector")
    LoraTuning(r=2, alpha=4).apply(policy.vision, "vision")
    with torch.no_grad():  # a trained adapter: B is zero at initialisation, which would merge to nothing
        generator = torch.Generator().manual_seed(1)
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    before = {key: value.clone() for key, value in policy.state_dict().items()}
    merged = exported_tensors(policy, tmp_path / "merged")
    backend = vllm_rollouts({"mode": "colocate", "model": str(folder)})
    backend.sync_weights(policy)
    [llm] = FakeLlm.built
    assert_same_tensors(llm.loaded, merged)
    after = policy.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[key], before[key]) for key in before)
    assert any(".lora_A." in key for key in after), "the policy lost its adapters"
    llm.loaded.clear()
    backend.sync_weights(policy)  # later syncs: the merged adapted layers only (the rest is frozen)
    # the adapted layers: where the merged export differs from the base's (every B is non-zero)
    adapted = {name: tensor for name, tensor in merged.items() if not torch.equal(tensor, base[name])}
    layers = policy.language.model.config.num_hidden_layers
    assert sum(name.startswith("language_model.") for name in adapted) == 2 * layers  # q_proj, v_proj
    assert {"multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_2.weight"} <= set(adapted)
    assert any(name.startswith("vision_tower.") for name in adapted)
    assert_same_tensors(llm.loaded, adapted)


def test_requests_become_llava_hf_prompts_with_one_seed_per_completion(monkeypatch, export, image_file):
    from transformers import AutoProcessor

    model, folder, _ = export
    install_fake_vllm(monkeypatch)
    backend = vllm_rollouts({"mode": "colocate", "model": str(folder)})
    requests = [
        RolloutRequest("a", [Message("user", f"<image>\n{QUESTION}")], image_file, count=3, seed=40,
                       temperature=0.7, top_p=0.9, max_new_tokens=5),
        RolloutRequest("b", [Message("user", "Is the sky blue?")], None, count=2, seed=7, max_new_tokens=4),
    ]
    completions = backend.generate(model, requests)
    [llm] = FakeLlm.built
    assert len(llm.loaded) > 0, "the weights are synchronised before the first rollout"
    rows = llm.generated
    assert [sampling["seed"] for _, sampling in rows] == [40, 41, 42, 7, 8]
    assert all(sampling["n"] == 1 for _, sampling in rows)
    assert [(s["temperature"], s["top_p"], s["max_tokens"]) for _, s in rows] == [(0.7, 0.9, 5)] * 3 + [(1.0, 1.0, 4)] * 2
    assert all(s["stop_token_ids"] == [model.tokenizer.eos_token_id] for _, s in rows)
    # the prompt is what transformers' LlavaProcessor makes of the export's chat template and the image
    processor = AutoProcessor.from_pretrained(str(folder))
    with Image.open(image_file) as opened:
        image = opened.convert("RGB")
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                       {"type": "text", "text": QUESTION}]}],
                                         add_generation_prompt=True)
    expected_ids = processor(text=text, images=image, return_tensors="pt").input_ids[0]
    for row, _ in rows[:3]:
        assert row["prompt_token_ids"] == expected_ids.tolist()
        assert row["prompt_token_ids"].count(model.markup.placeholder_id) == model.num_image_tokens
        assert np.array_equal(np.asarray(row["multi_modal_data"]["image"]), np.asarray(image))
    plain = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "Is the sky blue?"}]}],
                                          add_generation_prompt=True)
    plain_ids = processor.tokenizer(plain).input_ids
    assert all(row == {"prompt_token_ids": plain_ids} for row, _ in rows[3:])
    # the completions come back per request, in seed order, with their ids, text and finish reason
    assert [len(group) for group in completions] == [3, 2]
    for completion, seed, budget in zip([*completions[0], *completions[1]], [40, 41, 42, 7, 8], [5, 5, 5, 4, 4],
                                        strict=True):
        ids, reason = fake_completion(seed, budget)
        assert completion.token_ids == tuple(ids) and completion.finish_reason == reason
        assert completion.text == model.tokenizer.decode(ids, skip_special_tokens=True).strip()


@dataclass(frozen=True)
class EncodedRequest(RolloutRequest):
    """A request carrying the objective's own encoding of its prompt (GRPO passes ``prompt=``)."""

    prompt: Any = None


def test_the_objectives_encoded_prompt_is_what_vllm_continues(monkeypatch, export, image_file):
    from medzoo.core.inference.processing import processor_for

    model, folder, _ = export
    install_fake_vllm(monkeypatch)
    backend = vllm_rollouts({"mode": "colocate", "model": str(folder)})
    backend.synced_once = True
    messages = [Message("user", f"<image>\n{QUESTION}")]
    encoded = processor_for(model, "llava_med_v1").encode_text(messages, 1, add_generation_prompt=True)
    request = EncodedRequest("e", messages, image_file, count=2, seed=5, prompt=encoded)
    backend.generate(model, [request])
    [llm] = FakeLlm.built
    assert [row["prompt_token_ids"] for row, _ in llm.generated] == [encoded.input_ids] * 2
    assert encoded.input_ids != backend.build_prompts(model, [RolloutRequest("e", messages, image_file, 1, 5)]
                                                      )[0].token_ids  # not the model's own template rendering


def test_stop_strings_end_vllm_sampling_and_cut_the_text_as_medzoos_engine(monkeypatch, export):
    from medzoo.plugins.objectives.vllm_rollouts import completion

    model, folder, _ = export
    install_fake_vllm(monkeypatch)
    backend = vllm_rollouts({"mode": "colocate", "model": str(folder), "template": "llava_med_v1"})
    [prompt] = backend.build_prompts(model, [RolloutRequest("q", [Message("user", QUESTION)], None, count=1, seed=0)])
    assert prompt.sampling["stop"] == ["###"] and prompt.sampling["stop_token_ids"] == [model.tokenizer.eos_token_id]
    ids = model.tokenizer(" The liver. ### Human: more", add_special_tokens=False).input_ids
    done = completion(model, backend.processor(model), ids, "stop")
    assert done.text == "The liver." and done.token_ids == tuple(ids) and done.finish_reason == "stop"
    with pytest.raises(TrainingError, match=r"finish_reason 'abort'; expected 'stop' or 'length'"):
        completion(model, backend.processor(model), ids, "abort")


def test_an_export_of_another_architecture_is_refused_in_one_line(monkeypatch, export, tmp_path):
    model, folder, expected = export
    install_fake_vllm(monkeypatch)
    from safetensors.torch import save_file

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text((folder / "config.json").read_text())
    name = "multi_modal_projector.linear_2.weight"
    save_file({**{key: value for key, value in expected.items() if key != name}, name: expected[name][:, :3].clone()},
              str(other / "model.safetensors"))
    backend = vllm_rollouts({"mode": "colocate", "model": str(other)})
    with pytest.raises(TrainingError, match=rf"tensor '{name}' has shape .* in the export vLLM was built from") as caught:
        backend.sync_weights(model)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------------ server


class TrlServer(BaseHTTPRequestHandler):
    """The endpoints TRL 1.16.0's VLLMClient calls, answering as vLLM's dev-mode server does; records requests."""

    log: list[tuple[str, str, dict | None]] = []

    def log_message(self, *args):  # keep the test output quiet
        return None

    def answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.log.append(("GET", self.path, None))
        replies = {
            "/health": {}, "/v1/models": {"data": [{"id": "served-llava"}]}, "/get_world_size": {"world_size": 1},
            "/server_info?config_format=json": {"vllm_config": {"weight_transfer_config": {"backend": "nccl"}}},
        }
        self.answer(replies[self.path])

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.log.append(("POST", self.path, body))
        if self.path == "/v1/chat/completions/render":
            self.answer({"features": {"mm_hashes": {"image": ["h"]},
                                      "mm_placeholders": {"image": [{"offset": 1, "length": 99}]}}})
        elif self.path in ("/inference/v1/generate", "/v1/completions"):
            sampling = body.get("sampling_params", body)
            ids, reason = fake_completion(sampling["seed"], sampling["max_tokens"])
            self.answer({"choices": [{"index": 0, "token_ids": ids, "finish_reason": reason}]})
        else:
            self.answer({})


@pytest.fixture
def trl_server():
    TrlServer.log = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), TrlServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def install_fake_nccl(monkeypatch) -> dict:
    seen: dict = {"broadcast": [], "groups": [], "devices": []}

    def trainer_init(info):
        seen["groups"].append(info)
        return types.SimpleNamespace(group=types.SimpleNamespace(store="store", socket="socket"))

    def packed_nccl_broadcast_producer(iterator, group, src, post_iter_func):
        assert src == 0
        seen["broadcast"] += [(name, post_iter_func((name, tensor)).clone()) for name, tensor in iterator]

    install_fake_vllm(monkeypatch, **{
        "vllm.distributed": {}, "vllm.distributed.weight_transfer": {},
        "vllm.distributed.weight_transfer.nccl_common": {"trainer_init": trainer_init},
        "vllm.distributed.weight_transfer.packed_tensor": {"packed_nccl_broadcast_producer": packed_nccl_broadcast_producer},
        "vllm.utils": {}, "vllm.utils.network_utils": {"get_ip": lambda: "10.1.2.3"},
    })
    monkeypatch.setattr(vllm_server, "bind_cuda", seen["devices"].append)  # the policy stays on the CPU here
    return seen


def test_server_mode_syncs_weights_with_trls_protocol(monkeypatch, export, trl_server):
    model, _, expected = export
    seen = install_fake_nccl(monkeypatch)
    backend = vllm_rollouts({"mode": "server", "base_url": trl_server, "server_timeout": 5, "group_port": 51300})
    backend.sync_weights(model)
    posts = [(path, body) for method, path, body in TrlServer.log if method == "POST"]
    assert [path for path, _ in posts] == ["/init_weight_transfer_engine", "/start_weight_update", "/update_weights",
                                           "/finish_weight_update", "/reset_prefix_cache"]
    assert posts[0][1]["init_info"] == {"master_address": "10.1.2.3", "master_port": 51300, "rank_offset": 1,
                                        "world_size": 2, "packed": True}
    assert seen["groups"] == [posts[0][1]["init_info"]]
    update = posts[2][1]["update_info"]
    broadcast = seen["broadcast"]
    assert update["names"] == [name for name, _ in broadcast]  # announced in the order they are broadcast
    assert update["dtype_names"] == [str(tensor.dtype).removeprefix("torch.") for _, tensor in broadcast]
    assert update["shapes"] == [list(tensor.shape) for _, tensor in broadcast]
    assert_same_tensors(broadcast, expected)
    # a second sync reuses the group: only the update round trip
    TrlServer.log.clear()
    backend.sync_weights(model)  # every parameter of the tiny policy requires gradients: all of them again
    assert [path for method, path, _ in TrlServer.log if method == "POST"] == [
        "/start_weight_update", "/update_weights", "/finish_weight_update", "/reset_prefix_cache"]
    backend.close()


def test_server_mode_refuses_to_sync_from_several_processes(monkeypatch, export, trl_server):
    install_fake_nccl(monkeypatch)
    backend = vllm_rollouts({"mode": "server", "base_url": trl_server, "server_timeout": 5})
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    with pytest.raises(TrainingError, match="under DDP use mode: colocate"):
        backend.sync_weights(export[0])
    assert not [path for method, path, _ in TrlServer.log if method == "POST"]


def test_server_mode_generates_from_token_ids_with_the_image_features(monkeypatch, export, image_file, trl_server):
    model, folder, _ = export
    install_fake_nccl(monkeypatch)
    backend = vllm_rollouts({"mode": "server", "base_url": trl_server, "server_timeout": 5})
    backend.synced_once = True  # weights are covered above; here only generation
    requests = [RolloutRequest("a", [Message("user", f"<image>\n{QUESTION}")], image_file, count=2, seed=10,
                               temperature=0.8, top_p=0.95, max_new_tokens=6),
                RolloutRequest("b", [Message("user", "Is the sky blue?")], None, count=1, seed=3, max_new_tokens=4)]
    completions = backend.generate(model, requests)
    posts = [(path, body) for method, path, body in TrlServer.log if method == "POST"]
    assert posts[0][0] == "/v1/chat/completions/render"  # the image first, once; then the completions at once
    posts = [posts[0], *sorted(posts[1:], key=lambda post: (post[0] != "/inference/v1/generate",
                                                            post[1].get("sampling_params", post[1])["seed"]))]
    assert [path for path, _ in posts] == ["/v1/chat/completions/render", "/inference/v1/generate",
                                           "/inference/v1/generate", "/v1/completions"]
    render = posts[0][1]
    [part] = render["messages"][0]["content"]
    assert render["model"] == "served-llava" and part["image_url"]["url"].startswith("data:image/png;base64,")
    prompt = backend.build_prompts(model, requests[:1])[0].token_ids
    start = prompt.index(model.markup.placeholder_id)
    for (_, body), seed in zip(posts[1:3], [10, 11], strict=True):
        assert body["token_ids"] == prompt and body["model"] == "served-llava"
        assert body["features"]["mm_placeholders"]["image"] == [{"offset": start, "length": model.num_image_tokens}]
        sampling = body["sampling_params"]
        assert (sampling["n"], sampling["seed"], sampling["temperature"], sampling["top_p"], sampling["max_tokens"]) \
            == (1, seed, 0.8, 0.95, 6)
    plain = posts[3][1]
    assert plain["prompt"] == backend.build_prompts(model, requests[1:])[0].token_ids and plain["seed"] == 3
    assert [[c.token_ids for c in group] for group in completions] == [
        [tuple(fake_completion(10, 6)[0]), tuple(fake_completion(11, 6)[0])], [tuple(fake_completion(3, 4)[0])]]


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("has_vllm", "has_gpu", "lacks"), [
    (False, False, "neither"), (False, True, "no vllm package"), (True, False, "no CUDA GPU"),
], ids=["neither", "no-vllm", "no-gpu"])
def test_without_vllm_or_a_gpu_the_switch_is_one_line(monkeypatch, export, has_vllm, has_gpu, lacks):
    if has_vllm:
        install_fake_vllm(monkeypatch)
    else:
        monkeypatch.setitem(sys.modules, "vllm", None)  # importlib finds no vllm, installed or not
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    with pytest.raises(ValueError) as caught:
        vllm_backend({"mode": "colocate", "model": str(export[1])})
    assert str(caught.value) == (f"rollouts.backend: 'vllm' needs the vllm package and a CUDA GPU; this machine has "
                                 f"{lacks}: install vllm on a GPU machine or use backend: engine")


@pytest.mark.parametrize(("options", "message"), [
    ({"mode": "remote"}, r"rollouts.mode: 'remote'; expected one of colocate, server"),
    ({"mode": "colocate"}, r"rollouts.model: missing; mode colocate builds vLLM from an hf-llava export"),
    ({"mode": "colocate", "model": "/nowhere"}, r"rollouts.model: '/nowhere' holds no config.json"),
    ({"mode": "server", "gpu_memory_utilization": 1.5}, r"rollouts.gpu_memory_utilization: 1.5; expected a number"),
    ({"mode": "server", "base_url": "localhost:8000"}, r"rollouts.base_url: 'localhost:8000'; expected an http"),
    ({"mode": "server", "max_model_len": 0}, r"rollouts.max_model_len: 0; expected a positive integer"),
    ({"mode": "server", "gpus": 2}, r"rollouts.gpus: unknown option of backend 'vllm'; expected one of "),
], ids=["mode", "no-model", "not-an-export", "utilisation", "url", "length", "unknown"])
def test_bad_options_are_one_line_naming_the_key(options, message):
    with pytest.raises(ValueError, match=message) as caught:
        check_vllm_options(options)  # at recipe load: neither vLLM nor a GPU needed
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=message):
        vllm_backend(options)
