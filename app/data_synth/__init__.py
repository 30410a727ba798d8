"""A deterministic synthetic biomedical data set: 64x64 images whose pixels carry the answers.

``synthesize(output_dir, seed, sizes)`` writes the images plus captions, LLaVA-Med alignment and instruction
data, and VQA-RAD / SLAKE / PathVQA / ColonINST files in their original layouts (see ``generate.py``).
"""

from medzoo.app.data_synth.generate import DEFAULT_SEED, DEFAULT_SIZES, FORMAT_VERSION, synthesize

__all__ = ["DEFAULT_SEED", "DEFAULT_SIZES", "FORMAT_VERSION", "synthesize"]
