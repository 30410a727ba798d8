"""Registers the built-in vision encoders."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_vision_encoders(register: Register) -> None:
    from medzoo.plugins.vision.biomedclip import BIOMEDCLIP_HUB_ID, BiomedClipVisionEncoder
    from medzoo.plugins.vision.clip import CLIP_HUB_IDS, ClipVisionEncoder
    from medzoo.plugins.vision.dinov2 import DINOV2_HUB_IDS, Dinov2VisionEncoder
    from medzoo.plugins.vision.fusion import FUSION_HUB_IDS, FusionVisionEncoder
    from medzoo.plugins.vision.open_clip_tower import OPEN_CLIP_HUB_IDS, OpenClipVisionEncoder
    from medzoo.plugins.vision.siglip import SIGLIP_HUB_IDS, SiglipVisionEncoder
    from medzoo.plugins.vision.siglip2 import SIGLIP2_HUB_IDS, Siglip2VisionEncoder
    from medzoo.plugins.vision.timm_vit import TIMM_HUB_IDS, TimmVisionEncoder

    register(
        "clip",
        ClipVisionEncoder,
        description="CLIP ViT vision tower (transformers CLIPVisionModel); LLaVA-Med v1.0 / v1.5",
        hub_ids=CLIP_HUB_IDS,
        licence="MIT",
    )
    register(
        "biomedclip",
        BiomedClipVisionEncoder,
        description="BiomedCLIP ViT-B/16 trunk (timm, from an open_clip checkpoint); LLaVA-Med paper ablation",
        hub_ids=(BIOMEDCLIP_HUB_ID,),
        licence="MIT",
    )
    register(
        "siglip",
        SiglipVisionEncoder,
        description="SigLIP vision tower (transformers SiglipVisionModel): SigLIP, fixed-size SigLIP 2, MedSigLIP; "
        "ColonGPT",
        hub_ids=SIGLIP_HUB_IDS,
        licence="Apache-2.0 (MedSigLIP: Health AI Developer Foundations terms)",
    )
    register(
        "siglip2",
        Siglip2VisionEncoder,
        description="SigLIP 2 NaFlex vision tower (transformers Siglip2VisionModel) at one fixed square resolution",
        hub_ids=SIGLIP2_HUB_IDS,
        licence="Apache-2.0",
    )
    register(
        "dinov2",
        Dinov2VisionEncoder,
        description="DINOv2 vision tower, with or without registers (transformers Dinov2Model); prismatic, TinyLLaVA",
        hub_ids=DINOV2_HUB_IDS,
        licence="Apache-2.0",
    )
    register(
        "timm",
        TimmVisionEncoder,
        description="Any timm ViT-style tower by name or hub id (CLIP, SigLIP, DINOv2, EVA ...); prismatic's towers",
        hub_ids=TIMM_HUB_IDS,
        licence="Apache-2.0 (timm; each checkpoint has its own licence)",
    )
    register(
        "open_clip",
        OpenClipVisionEncoder,
        description="Any open_clip model's vision tower (native ViT or timm trunk) by hub id, folder or "
        "architecture:tag; BiomedCLIP family, PMC-trained CLIPs",
        hub_ids=OPEN_CLIP_HUB_IDS,
        licence="MIT (open_clip; each checkpoint has its own licence)",
    )
    register(
        "fusion",
        FusionVisionEncoder,
        description="Two registered towers with features concatenated on channels (prismatic dinosiglip, "
        "TinyLLaVA CLIP + DINOv2)",
        hub_ids=FUSION_HUB_IDS,
        licence="each tower's own",
    )
