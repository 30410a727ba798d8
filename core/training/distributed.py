"""Multi-process settings: FSDP on CPU processes, the FSDP wrap policy from the components' block classes,
sharded-state checks and gathering a sharded model back into one for saving."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from medzoo.core.errors import RecipeError, TrainingError
from medzoo.core.model.multimodal import MultimodalModel

if TYPE_CHECKING:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

SHARDED = ("FSDP", "DEEPSPEED")


def block_class_names(model: MultimodalModel) -> list[str]:
    """Class names of the vision encoder's and the language model's transformer blocks (FSDP wrap units)."""
    names = [*(cls.__name__ for cls in model.vision.block_classes), model.language.decoder_layer_class.__name__]
    return list(dict.fromkeys(names))


def distributed_type(accelerator: Any) -> str:
    return str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)).upper()


def is_deepspeed(accelerator: Any) -> bool:
    return "DEEPSPEED" in distributed_type(accelerator)


def is_sharded(accelerator: Any) -> bool:
    """True under FSDP and DeepSpeed, where no process holds the whole model between steps."""
    kind = distributed_type(accelerator)
    return any(name in kind for name in SHARDED)


def cpu_accelerator() -> Any:
    """An accelerator for CPU processes that shards for real when ``accelerate launch`` asked for FSDP or DeepSpeed.

    accelerate only turns FSDP on for accelerator devices (and its FSDP plugin refuses to be built without one), so
    CPU processes would quietly run as plain data parallel; torch's FSDP runs over gloo, which lets a machine without
    GPUs exercise the sharded code path.
    """
    from accelerate import Accelerator
    from accelerate.utils import parse_flag_from_env, patch_environment

    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED"):
        from accelerate.utils import InitProcessGroupKwargs

        # without CUDA accelerate names no backend and counts one process; DeepSpeed's own CPU path works over gloo
        return Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")])
    if not parse_flag_from_env("ACCELERATE_USE_FSDP"):
        return Accelerator(cpu=True)
    with patch_environment(ACCELERATE_USE_FSDP="false"):
        accelerator = Accelerator(cpu=True)
    if accelerator.num_processes < 2:
        return accelerator
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    # torch's FSDP broadcasts module states from GPU memory only; every process builds the same weights anyway
    # (same seed, or the same saved stage), so CPU processes skip the broadcast
    with patch_environment(FSDP_SYNC_MODULE_STATES="false"):
        plugin = FullyShardedDataParallelPlugin()
    # AcceleratorState copies the process state whenever it is constructed again: set both
    for state in (PartialState(), accelerator.state):
        state.distributed_type = DistributedType.FSDP
        state.device = torch.device("cpu")  # FSDP's device_id; accelerate says "cpu:<local rank>"
    accelerator.state.fsdp_plugin = plugin
    return accelerator


@contextmanager
def whole_model_construction(accelerator: Any) -> Iterator[None]:
    """Build models unpartitioned unless the DeepSpeed launch config asks for ``zero3_init_flag``.

    accelerate registers every ZeRO-3 config with transformers, which then partitions Hugging Face models while
    constructing them (deepspeed.zero.Init) even when the flag is off; ZeRO-3 partitions the whole model when the
    engine starts anyway, and construction matches one process's (same random initialisation, same loading).
    """
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero3_init_flag:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def configure_fsdp(accelerator: Any, model: MultimodalModel) -> None:
    """Under FSDP with transformer-based wrapping and no class names given, wrap every vision and decoder block."""
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None:
        return
    if getattr(plugin, "fsdp_version", 1) != 1:
        raise RecipeError(
            f"accelerate config fsdp_version: {plugin.fsdp_version} is not supported; expected 1 "
            "(see recipes/accelerate/fsdp.yaml)"
        )
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    if plugin.auto_wrap_policy in (None, transformer_auto_wrap_policy) and not plugin.transformer_cls_names_to_wrap:
        plugin.auto_wrap_policy = transformer_auto_wrap_policy
        plugin.transformer_cls_names_to_wrap = block_class_names(model)


def configure_deepspeed(accelerator: Any, model: MultimodalModel, stage: Any, micro_batches_per_step: int) -> None:
    """Fill the DeepSpeed config from the stage and the model where it says ``auto``.

    The trainer cuts batches and marks accumulation boundaries itself, so the recipe's batch sizes and clipping
    decide; an explicit config value that disagrees with the recipe is an error rather than a silent override.
    """
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    config = plugin.deepspeed_config
    zero = config.setdefault("zero_optimization", {})
    hidden = model.language.hidden_size
    wanted = {
        "train_micro_batch_size_per_gpu": stage.micro_batch_size,
        "gradient_accumulation_steps": micro_batches_per_step,
        "train_batch_size": stage.micro_batch_size * micro_batches_per_step * accelerator.num_processes,
        "gradient_clipping": float(stage.max_grad_norm or 0.0),
    }
    for key, value in wanted.items():
        given = config.get(key, "auto")
        if given != "auto" and given != value:
            raise RecipeError(
                f"DeepSpeed config {key}: {given!r} disagrees with stage {stage.name!r} ({value!r}); set it to \"auto\""
            )
        config[key] = value
    for key, value in {
        "reduce_bucket_size": hidden * hidden,
        "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
        "stage3_param_persistence_threshold": 10 * hidden,
    }.items():
        if zero.get(key) == "auto":
            zero[key] = value


def backward(accelerator: Any, wrapped: torch.nn.Module, loss: torch.Tensor, last_micro_batch: bool) -> None:
    """Backpropagate one micro-batch; gradients are reduced across processes on the step's last micro-batch only.

    The loss is already normalised over the global batch's target tokens, so DeepSpeed must not divide it by the
    accumulation steps again; under DeepSpeed the engine's step (clipping, optimizer, zeroing) runs here.
    """
    if is_deepspeed(accelerator):
        wrapped.set_gradient_accumulation_boundary(last_micro_batch)
        wrapped.backward(loss, scale_wrt_gas=False)
        if last_micro_batch:
            wrapped.step()
        return
    if last_micro_batch or accelerator.num_processes == 1:
        accelerator.backward(loss)
        return
    with accelerator.no_sync(wrapped):
        accelerator.backward(loss)


def gather_options(model: torch.nn.Module, **extra: bool) -> StateDictOptions:
    """Full state dicts, moved to CPU memory on the main process when the model lives on an accelerator.

    Models already in CPU memory skip the offload: torch's offload path reuses its gather buffer there, which
    aliases each parameter's optimizer states (Adam's exp_avg came back equal to exp_avg_sq under FSDP on CPU).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    on_accelerator = next(model.parameters()).device.type != "cpu"
    return StateDictOptions(full_state_dict=True, cpu_offload=on_accelerator, **extra)


def clean_name(name: str) -> str:
    """A parameter's name without the FSDP and activation-checkpointing wrapper infixes."""
    for infix in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod."):
        name = name.replace(infix, "")
    return name


def _unwrap_fsdp_in_place(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every FSDP wrapper in ``module``'s tree by the module it wraps; returns the unwrapped root."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    if isinstance(module, FullyShardedDataParallel):
        module = module.module
    for parent in list(module.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, FullyShardedDataParallel):
                setattr(parent, child_name, child.module)
    return module


def consolidate(accelerator: Any, wrapped: torch.nn.Module, model: MultimodalModel) -> MultimodalModel | None:
    """The trained model whole, on the main process (``None`` elsewhere); every process must call this.

    Under DDP or one process that is ``model`` itself. Under FSDP and DeepSpeed the full state dict is gathered
    onto the main process and loaded into ``model``'s own modules (FSDP wrappers removed), which consumes the
    sharded model: train the next stage from the saved directory.
    """
    kind = distributed_type(accelerator)
    if "FSDP" in kind:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict


        full = {name: tensor.cpu() for name, tensor in get_model_state_dict(wrapped, options=gather_options(wrapped)).items()}
        _unwrap_fsdp_in_place(model)
    elif is_deepspeed(accelerator):
        full = accelerator.get_state_dict(wrapped)
    else:
        return model
    if not accelerator.is_main_process:
        return None
    _assign_tensors(model, {clean_name(k): v for k, v in full.items()})
    return model


def _assign_tensors(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put ``state``'s tensors in place of ``model``'s parameters and buffers (whatever their current, sharded shape),
    keeping each parameter's ``requires_grad`` and tied parameters tied."""
    expected = set(model.state_dict(keep_vars=True))
    missing = sorted(expected - set(state))
    if missing:
        raise TrainingError(f"gathered state dict lacks {len(missing)} tensors such as {missing[0]!r}")
    replaced: dict[int, torch.nn.Parameter] = {}
    for name, tensor in state.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        if leaf in owner._parameters:
            old = owner._parameters[leaf]
            if id(old) not in replaced:
                replaced[id(old)] = torch.nn.Parameter(tensor, requires_grad=old.requires_grad)
            owner._parameters[leaf] = replaced[id(old)]
        elif leaf in owner._buffers:
            owner._buffers[leaf] = tensor
        else:
            raise TrainingError(f"gathered state dict names {name!r}, which the model does not have")
