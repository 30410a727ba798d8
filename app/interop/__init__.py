"""Interoperability with the published LLaVA / LLaVA-Med checkpoints and the llava-hf (transformers, vLLM) layout.

``llava_import``: official layouts -> a medzoo model directory; ``hf_llava_export``: a medzoo model -> the
llava-hf layout; ``delta``: LLaVA-Med v1.0 delta weights; ``checkpoint_files``: reading and writing weights safely.
"""

from medzoo.core.errors import InteropError

__all__ = ["InteropError"]
