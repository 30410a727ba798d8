"""``colongpt``: ColonGPT's conversation format, which is ``vicuna_v1`` with Phi's EOS.

ai4colonoscopy/IntelliScope ``colongpt/conversation.py`` ``conv_colongpt`` is ``SeparatorStyle.TWO`` with
Vicuna's system line, roles ``USER``/``ASSISTANT``, ``sep=" "`` and ``sep2="<|endoftext|>"``, the EOS of
Phi-1.5/Phi-2's tokenizer: exactly ``vicuna_v1`` rendered with that tokenizer's EOS. Its
``preprocess_colongpt`` (``colongpt/util/data_utils.py``) trains each reply and the ``<|endoftext|>`` after it
(``instruction_len - 1`` and ``round_len + 1`` for a tokenizer without BOS), which is what medzoo labels, and
``preprocess_multimodal`` puts ``<image>\\n`` in front of the first turn (``image_placement: front``). So this
is an alias of ``vicuna_v1``; only the name and the stop string (Phi's ``<|endoftext|>``) differ.
"""

from __future__ import annotations

from medzoo.plugins.templates.vicuna_v1 import VicunaV1Template

PHI_EOS = "<|endoftext|>"


class ColonGptTemplate(VicunaV1Template):
    name = "colongpt"
    stop_strings = (PHI_EOS,)
