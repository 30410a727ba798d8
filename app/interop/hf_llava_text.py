"""How a medzoo language model is expressed as llava-hf's language model and ``lm_head``.

llava-hf builds ``AutoModel.from_config(text_config)`` and a bias-free ``lm_head``, and computes the logits as
``lm_head(hidden)`` and nothing more. So any transformers causal LM of the ``model`` + ``lm_head`` shape fits
(Llama, Mistral, Qwen2/3, Phi-3, Gemma 3, ...), its ``text_config`` being the model's own config whatever its
``model_type``; refused: other libraries, a head with a bias (Phi-2), logits changed after the head (Gemma 2's
``final_logit_softcapping``, Cohere's ``logit_scale``, Granite's ``logits_scaling``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medzoo.app.interop.hf_llava_vision import config_dict
from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.language_model import LanguageModel

#: config fields by which a causal LM changes its logits after ``lm_head`` (value that means "off")
LOGIT_CHANGES = {"final_logit_softcapping": None, "logit_scale": 1.0, "logits_scaling": 1.0}


def check_language(language: LanguageModel, name: str) -> None:
    """Raise :class:`ExportRefused` (one line) unless llava-hf's language side can hold ``language``."""
    from transformers import PreTrainedModel
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING

    causal = getattr(language, "model", None)
    what = f"hf-llava cannot hold the {name} language model"
    if not isinstance(causal, PreTrainedModel):
        raise ExportRefused(f"{what}: it is not a transformers causal LM")
    config = causal.config
    base = getattr(causal, "model", None)
    if MODEL_FOR_CAUSAL_LM_MAPPING.get(type(config), None) is not type(causal) or (
        MODEL_MAPPING.get(type(config), None) is not type(base)
    ):
        raise ExportRefused(f"{what}: AutoModel does not rebuild its {type(causal).__name__} from its "
                            f"{type(config).__name__} as a base model plus lm_head")
    head = causal.get_output_embeddings()
    if not isinstance(head, nn.Linear) or not all(key.startswith(("model.", "lm_head.")) for key in causal.state_dict()):
        raise ExportRefused(f"{what}: its weights are not model.* plus lm_head.*")
    if head.bias is not None:
        raise ExportRefused(f"{what}: its lm_head has a bias ({config.model_type}); llava-hf's has none")
    for field, off in LOGIT_CHANGES.items():
        value = getattr(config, field, off)
        if value is not None and value != off:
            raise ExportRefused(f"{what}: its {config.model_type} head applies {field}={value!r}, "
                                "which llava-hf does not")


def text_config(language: LanguageModel) -> dict[str, Any]:
    """``text_config``: the causal LM's own config and class, the vocabulary as embedded and the tokenizer's
    special ids."""
    config = language.model.config  # type: ignore[attr-defined]
    text = config_dict(config)
    text["vocab_size"] = language.input_embeddings().num_embeddings
    # vLLM builds the inner model from text_config.architectures (llava-hf's checkpoints carry it)
    text["architectures"] = [type(language.model).__name__]  # type: ignore[attr-defined]
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in text:
        text["rope_theta"] = float(rope["rope_theta"])  # transformers < 5 and vLLM read it here
    tokenizer = language.tokenizer
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    return text
