"""Built-in vision encoders (CLIP, BiomedCLIP, SigLIP, SigLIP 2, DINOv2, timm, open_clip, fused pairs) and the
image statistics they share."""

from __future__ import annotations

# CLIP's image statistics (the OpenAI dataset mean / std). BiomedCLIP's open_clip config has the same ones, and
# LLaVA-Med v1.0 preprocessed for BiomedCLIP with openai/clip-vit-base-patch16's processor, which has them too.
OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
