"""A LanguageModel over any Hugging Face causal LM: real weights from a hub id or directory, or a random model
built from a config dict (with the tiny shipped tokenizer by default).

Subclasses name the transformers config class, the causal-LM class and the default conversation template
(``plugins/language/generic.py`` is the one class for any other transformers causal LM).

Template default: a family that ``prefers_chat_template`` uses ``chat_template`` (the tokenizer's own Jinja
chat template) when the loaded tokenizer has one and its hand-written ``default_template`` otherwise; the
others always use ``default_template``. The choice depends only on the tokenizer, which is saved with the
model, so a saved model reloads with the same template; an explicit ``template`` always wins.

Padding policy (``ensure_pad_token``): keep the tokenizer's pad token; otherwise use ``<pad>`` when the vocabulary
has it, else the unknown token (what LLaVA does for Llama and Mistral); only when neither exists is a new
``<pad>`` token added (the embeddings grow). EOS is never used as padding, so masking padding by id can never
hide a real end-of-sequence token.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from medzoo import (
    DTYPE_NAMES,
    PRECISIONS,
    LanguageModel,
    MedzooError,
    RecipeError,
    check_checkpoint_folder,
    did_you_mean,
    dtype_name,
    read_json,
    set_activation_checkpointing,
    torch_dtype,
)
from medzoo.plugins.language.tiny_tokenizer import TINY_TOKENIZER_NAME, resolve_tokenizer_source

logger = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
CHAT_TEMPLATE = "chat_template"
#: keys of a medzoo language-model config that are not fields of the transformers config
TOKENIZER_KEY = "tokenizer"
ADDED_TOKENS_KEY = "added_tokens"
#: bookkeeping fields of a transformers config that are not architecture
_NON_ARCHITECTURE_KEYS = frozenset(
    {"transformers_version", "model_type", "architectures", "_name_or_path", "dtype", "torch_dtype",
     "_attn_implementation_autoset", "use_cache"}
)


def parse_dtype(dtype: str | torch.dtype | None, allow_auto: bool = False) -> str | torch.dtype | None:
    """``None``, a ``torch.dtype`` or one of float32/float16/bfloat16 (fp32/fp16/bf16; ``auto`` when loading)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if allow_auto and dtype == "auto":
        return dtype
    if dtype_name(dtype) is None:
        allowed = ", ".join(sorted([*DTYPE_NAMES, *PRECISIONS]) + (["auto"] if allow_auto else []))
        raise RecipeError(f"language model dtype {dtype!r} is not supported; expected one of {allowed}")
    return torch_dtype(dtype)


def ensure_pad_token(tokenizer: Any) -> None:
    """Give ``tokenizer`` a pad token following the module's padding policy (never EOS)."""
    if tokenizer.pad_token is not None:
        return
    if PAD_TOKEN in tokenizer.get_vocab():
        tokenizer.pad_token = PAD_TOKEN
    elif tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    else:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        logger.info("tokenizer had no pad, <pad> or unknown token: added %s", PAD_TOKEN)


#: the JSON files a saved Hugging Face tokenizer may hold (the first is the fast tokenizer itself)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def check_tokenizer_files(folder: Path) -> None:
    """Each tokenizer JSON file present in a local ``folder`` is UTF-8 JSON with an object at the top."""
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            read_json(folder / name, MedzooError, "a tokenizer file")


def load_tokenizer(source: str, padding_side: str = "right", trust_remote_code: bool = False) -> Any:
    """A fast tokenizer from a hub id, a directory or ``medzoo-tiny``, with a pad token."""
    from transformers import AutoTokenizer

    if padding_side not in ("left", "right"):
        raise RecipeError(f"tokenizer padding_side {padding_side!r} is not supported; expected left or right")
    folder = Path(resolve_tokenizer_source(source))
    if folder.is_dir():
        check_tokenizer_files(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            resolve_tokenizer_source(source), use_fast=True, padding_side=padding_side,
            trust_remote_code=trust_remote_code,
        )
    except (OSError, ValueError) as error:
        if folder.is_dir() and not (folder / TOKENIZER_FILES[0]).is_file():
            raise MedzooError(
                f"{folder / TOKENIZER_FILES[0]}: missing; expected the fast tokenizer saved with the model"
            ) from None
        raise RecipeError(f"cannot load tokenizer {source!r}: {str(error).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise RecipeError(f"tokenizer {source!r} has no fast (tokenizers) version; medzoo needs offsets")
    ensure_pad_token(tokenizer)
    return tokenizer


class HFCausalLanguageModel(LanguageModel):
    """``self.model`` is a transformers causal LM, ``self.tokenizer`` its fast tokenizer."""

    #: registry name, used in messages
    component_name: ClassVar[str] = "hf-causal"
    #: the transformers config class (e.g. ``LlamaConfig``) and causal-LM class (e.g. ``LlamaForCausalLM``)
    config_class: ClassVar[type]
    causal_lm_class: ClassVar[type]
    #: ``model_type`` values of other checkpoints whose language-model weights this class can read
    compatible_model_types: ClassVar[tuple[str, ...]] = ()
    #: the hand-written template (and, with ``prefers_chat_template``, the fallback when the tokenizer has none)
    default_template: ClassVar[str]
    prefers_chat_template: ClassVar[bool] = False
    default_hub_id: ClassVar[str]

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        template: str | None = None,
        tokenizer_source: str = TINY_TOKENIZER_NAME,
        added_tokens: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.template_name = template or self.resolve_template(tokenizer)
        self.tokenizer_source = tokenizer_source
        #: tokens added on top of the tokenizer source (``from_config`` re-adds them)
        self.added_tokens: list[str] = list(dict.fromkeys(added_tokens or []))
        self._check_template(self.template_name)
        ensure_pad_token(tokenizer)
        self._bind_template()
        if self.added_tokens:
            LanguageModel.add_special_tokens(self, self.added_tokens)
        if len(tokenizer) > self.input_embeddings().num_embeddings:
            self.model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        self._sync_special_token_ids()

    # ---- building -------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        source: str,
        template: str | None = None,
        dtype: str | torch.dtype | None = None,
        attention: str = "sdpa",
        tokenizer: str | None = None,
        trust_remote_code: bool = False,
        padding_side: str = "right",
        **_: Any,
    ) -> HFCausalLanguageModel:
        """Load weights and tokenizer from a hub id or a local directory (``tokenizer`` overrides where the
        tokenizer comes from). Remote code runs only with ``trust_remote_code=True``."""
        from transformers import AutoModelForCausalLM, PretrainedConfig

        cls._check_template(template)
        local = Path(source)
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise MedzooError(f"{local / 'config.json'}: missing; expected the language model's transformers config")
            read_json(local / "config.json", MedzooError, "the language model's transformers config")
        try:
            config_dict, _unused = PretrainedConfig.get_config_dict(source)
        except OSError as error:
            raise RecipeError(
                f"language_model {cls.component_name!r}: cannot read a config from {source!r}: "
                f"{str(error).splitlines()[0]}"
            ) from None
        model_type = config_dict.get("model_type")
        native = model_type in cls._native_model_types()
        if local.is_dir() and native:
            check_checkpoint_folder(local, lambda: cls._meta_model(local), MedzooError, "language model weights")
        options = {"dtype": parse_dtype(dtype, allow_auto=True), "attn_implementation": cls._attention_for(attention)}
        if native or (trust_remote_code and model_type not in cls.compatible_model_types):
            model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code, **options)
            if not isinstance(model, cls.causal_lm_class) and not trust_remote_code:
                raise RecipeError(f"{source!r} loads as {type(model).__name__}, not {cls.causal_lm_class.__name__}")
        elif model_type in cls.compatible_model_types:
            # e.g. a LLaVA checkpoint: read its language-model weights; multimodal keys are left unused
            config = cls.config_class.from_pretrained(source)
            model = cls.causal_lm_class.from_pretrained(source, config=config, **options)
        else:
            accepted = ", ".join((*cls._native_model_types(), *cls.compatible_model_types))
            raise RecipeError(
                f"language_model {cls.component_name!r}: {source!r} has model_type {model_type!r}; "
                f"expected one of {accepted}"
            )
        tokenizer_source = tokenizer or source
        loaded_tokenizer = load_tokenizer(tokenizer_source, padding_side, trust_remote_code)
        return cls(model, loaded_tokenizer, template=template, tokenizer_source=tokenizer_source)

    @classmethod
    def weightless(
        cls,
        source: str,
        template: str | None = None,
        tokenizer: str | None = None,
        padding_side: str = "right",
        **_: Any,
    ) -> HFCausalLanguageModel | None:
        """:meth:`from_pretrained`'s model from the source's config and tokenizer, no weights read (``None`` for a
        model type only remote code builds)."""
        from transformers import PretrainedConfig

        cls._check_template(template)
        try:
            model_type = PretrainedConfig.get_config_dict(source)[0].get("model_type")
        except OSError:
            return None  # from_pretrained says why, in its own words
        if model_type in cls._native_model_types():
            model = cls._meta_model(source)
        elif model_type in cls.compatible_model_types:
            model = cls.causal_lm_class(cls.config_class.from_pretrained(source))
        else:
            return None
        tokenizer_source = tokenizer or source
        return cls(model, load_tokenizer(tokenizer_source, padding_side), template=template,
                   tokenizer_source=tokenizer_source)

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        template: str | None = None,
        dtype: str | torch.dtype | None = None,
        attention: str = "sdpa",
        padding_side: str = "right",
        **_: Any,
    ) -> HFCausalLanguageModel:
        """Random weights. ``config`` holds transformers config fields plus ``tokenizer`` (``medzoo-tiny``,
        a hub id or a path) and optionally ``added_tokens``; ``vocab_size`` defaults to the tokenizer's size."""
        cls._check_template(template)
        options = dict(config)
        tokenizer_source = str(options.pop(TOKENIZER_KEY, TINY_TOKENIZER_NAME))
        added_tokens = list(options.pop(ADDED_TOKENS_KEY, []) or [])
        config_class = cls._config_class_for(options)
        cls._check_config_keys(options, config_class)
        tokenizer = load_tokenizer(tokenizer_source, padding_side)
        missing = [token for token in added_tokens if token not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        vocab_size = options.setdefault("vocab_size", len(tokenizer))
        if vocab_size < len(tokenizer):
            raise RecipeError(
                f"language_model config key 'vocab_size' is {vocab_size} but tokenizer {tokenizer_source!r} "
                f"has {len(tokenizer)} tokens; expected at least {len(tokenizer)} (or leave it out)"
            )
        for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
            options[key] = getattr(tokenizer, key)
        hf_config = config_class(**options)
        model = cls._causal_lm_class_for(hf_config)._from_config(
            hf_config, dtype=parse_dtype(dtype), attn_implementation=cls._attention_for(attention)
        )
        return cls(model, tokenizer, template=template, tokenizer_source=tokenizer_source, added_tokens=added_tokens)

    # ---- what the transformers classes are (one family here; any model type in generic.py) -----------------
    @classmethod
    def _native_model_types(cls) -> tuple[str, ...]:
        """``model_type`` values this class loads with its own classes."""
        return (cls.config_class.model_type,)

    @classmethod
    def _config_class_for(cls, options: dict[str, Any]) -> type:
        """The transformers config class a ``from_config`` dict builds (may consume keys of ``options``)."""
        return cls.config_class

    @classmethod
    def _causal_lm_class_for(cls, config: Any) -> type:
        return cls.causal_lm_class

    @classmethod
    def _attention_for(cls, attention: str) -> str:
        """The attention implementation to build with (a family may not support the one asked for)."""
        return attention

    @classmethod
    def _meta_model(cls, folder: Path | str) -> nn.Module:
        """The architecture a local checkpoint folder describes (built on the meta device by the caller)."""
        return cls.causal_lm_class(cls.config_class.from_pretrained(folder))

    @classmethod
    def _check_config_keys(cls, options: dict[str, Any], config_class: type | None = None) -> None:
        config_class = config_class or cls.config_class
        known = set(config_class().to_dict()) - _NON_ARCHITECTURE_KEYS | {"use_cache"}
        for key in options:
            if key not in known:
                raise RecipeError(
                    f"language_model {cls.component_name!r}: unknown config key {key!r}{did_you_mean(key, known)}; "
                    f"expected {config_class.__name__} fields, {TOKENIZER_KEY!r} or {ADDED_TOKENS_KEY!r}"
                )

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            TOKENIZER_KEY: TINY_TOKENIZER_NAME,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
        }

    def architecture_config(self) -> dict[str, Any]:
        config = {
            key: value
            for key, value in self.model.config.to_diff_dict().items()
            if key not in _NON_ARCHITECTURE_KEYS and key in type(self.model.config)().to_dict()
        }
        config["vocab_size"] = self.input_embeddings().num_embeddings
        config[TOKENIZER_KEY] = self.tokenizer_source
        if self.added_tokens:
            config[ADDED_TOKENS_KEY] = list(self.added_tokens)
        return config

    # ---- the LanguageModel interface ------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def decoder_layer_class(self) -> type[nn.Module]:
        """The decoder's ``layers[0]`` class, else the block transformers itself keeps whole
        (``_no_split_modules``)."""
        layers = getattr(self.model.get_decoder(), "layers", None)
        if layers:
            return type(layers[0])
        unsplit = set(getattr(self.model, "_no_split_modules", None) or ())
        for module in self.model.modules():
            if type(module).__name__ in unsplit:
                return type(module)
        raise TypeError(f"{type(self.model).__name__} exposes no decoder layers")

    def add_special_tokens(self, tokens: list[str]) -> list[int]:
        new = [token for token in tokens if token not in self.tokenizer.get_vocab() and token not in self.added_tokens]
        ids = super().add_special_tokens(tokens)
        self.added_tokens.extend(dict.fromkeys(new))
        return ids

    def save_pretrained(self, directory: str, save_weights: bool = True) -> None:
        """Write the transformers config (and weights when asked) plus the tokenizer, loadable by
        ``from_pretrained(directory)``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        if save_weights:
            self.model.save_pretrained(str(path))
        else:
            self.model.config.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))

    def enable_gradient_checkpointing(self) -> None:
        """Recompute decoder activations in the backward pass (non-reentrant, so frozen inputs are fine)."""
        set_activation_checkpointing(self.model, True)
        self.model.config.use_cache = False

    # ---- helpers --------------------------------------------------------------------------------------------
    @classmethod
    def resolve_template(cls, tokenizer: Any) -> str:
        """The default template for ``tokenizer`` (see the module docstring)."""
        if cls.prefers_chat_template and getattr(tokenizer, "chat_template", None):
            return CHAT_TEMPLATE
        return cls.default_template

    @classmethod
    def _check_template(cls, template: str | None) -> None:
        """Fail on an unknown template name before any weights are loaded."""
        from medzoo import components

        components().get("template", template or cls.default_template)

    def _bind_template(self) -> None:
        """Fail now, naming the tokenizer, when the template cannot read it (``chat_template`` without one, or a
        chat template that drifts)."""
        from medzoo import template_for

        template_for(self.template_name, self.tokenizer)

    def _sync_special_token_ids(self) -> None:
        for target in (self.model.config, getattr(self.model, "generation_config", None)):
            if target is None:
                continue
            target.pad_token_id = self.tokenizer.pad_token_id
            if self.tokenizer.bos_token_id is not None:
                target.bos_token_id = self.tokenizer.bos_token_id
            if self.tokenizer.eos_token_id is not None:
                target.eos_token_id = self.tokenizer.eos_token_id
