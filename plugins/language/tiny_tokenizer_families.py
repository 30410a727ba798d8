"""The family variants of medzoo's tiny tokenizer: the same learned pieces, each family's special tokens,
BOS/EOS behaviour and chat template, so tiny random models of every family read conversations as the real
checkpoints do. ``assets/build_tiny_tokenizer.py`` writes one folder per family (``tiny-tokenizer-<name>``),
loadable as ``medzoo-tiny-<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from medzoo.plugins.language import chat_formats


@dataclass(frozen=True)
class TinyTokenizerFamily:
    """What a family's tokenizer adds to the tiny base (``<unk>``, ``<s>``, ``</s>``, image tokens, ``<pad>``)
    or, ``byte_level``, to Qwen-style pieces learned from the same corpus (image tokens added)."""

    name: str
    #: BOS/EOS strings (``None``: no BOS, like Qwen) and whether encoding prepends BOS
    bos_token: str | None
    eos_token: str
    add_bos_token: bool
    #: special tokens appended to the vocabulary (control tokens of the family's chat format)
    special_tokens: tuple[str, ...]
    #: ordinary added tokens (never split, not special: Qwen3's think tags)
    added_tokens: tuple[str, ...] = ()
    chat_template: str | None = None
    #: byte-level BPE like Qwen's (``Qwen2Tokenizer``) instead of the Llama-style pieces with byte fallback
    byte_level: bool = False
    pad_token: str = "<pad>"


TOKENIZER_FAMILIES: dict[str, TinyTokenizerFamily] = {
    family.name: family
    for family in (
        # Qwen: byte-level BPE, no BOS, <|endoftext|> pads (as Qwen2.5-Instruct and Qwen3 ship)
        TinyTokenizerFamily("qwen2", None, "<|im_end|>", False, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                            chat_template=chat_formats.QWEN2_5, byte_level=True, pad_token="<|endoftext|>"),
        TinyTokenizerFamily("qwen3", None, "<|im_end|>", False, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                            added_tokens=("<think>", "</think>"), chat_template=chat_formats.QWEN3, byte_level=True,
                            pad_token="<|endoftext|>"),
        TinyTokenizerFamily("llama3", "<|begin_of_text|>", "<|eot_id|>", True,
                            ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                             "<|eot_id|>"),
                            chat_template=chat_formats.LLAMA3),
        # Phi-1.5 / Phi-2 (CodeGen's tokenizer): <|endoftext|> is BOS and EOS, nothing is prepended; no template
        TinyTokenizerFamily("phi", "<|endoftext|>", "<|endoftext|>", False, ("<|endoftext|>",)),
        TinyTokenizerFamily("phi3", "<s>", "<|endoftext|>", True,
                            ("<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
                            chat_template=chat_formats.PHI3),
        TinyTokenizerFamily("gemma2", "<bos>", "<eos>", True, ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
                            chat_template=chat_formats.GEMMA2),
        TinyTokenizerFamily("gemma3", "<bos>", "<eos>", True, ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
                            chat_template=chat_formats.GEMMA3),
    )
}
