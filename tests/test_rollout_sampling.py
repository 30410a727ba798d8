"""Rollout sampling: the vectorised per-row sampler's inverse transform by hand, and rollouts that never contain
the image markup (whose positions the model fills with image features, so such a completion cannot be trained)."""

from __future__ import annotations

import torch

from medzoo.core.inference.sampling import RowSampler, inverse_transform
from medzoo.core.inference.settings import SamplingSettings


def test_inverse_transform_picks_the_first_token_whose_cumulative_mass_exceeds_the_uniform():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0]] * 4 + [[0.5, 0.0, 0.5, 0.0]] * 2)
    uniforms = torch.tensor([0.0, 0.5, 0.79, 1.0 - 1e-12, 0.5, 0.25])
    # cumulative [0.5, 0.8, 1.0, 1.0]: 0 -> 0; 0.5 -> 1; 0.79 -> 1; just below 1 -> 2 (never the 0-mass token 3);
    # cumulative [0.5, 0.5, 1.0, 1.0]: 0.5 -> 2 (the 0-mass token 1 is skipped); 0.25 -> 0
    assert inverse_transform(probs, uniforms).tolist() == [0, 1, 1, 2, 2, 0]


def test_a_rows_draws_depend_only_on_its_own_seed_and_budget():
    settings = [SamplingSettings(max_new_tokens=3, temperature=1.0, seed=7),
                SamplingSettings(max_new_tokens=9, temperature=1.0, seed=8), SamplingSettings(max_new_tokens=5)]
    together = RowSampler(settings)
    alone = RowSampler(settings[:1])
    assert together.rows == [0, 1]  # the greedy row is left to generate's argmax
    assert torch.equal(together.uniforms[0, :3], alone.uniforms[0])
    assert torch.equal(together.uniforms[0, 3:], torch.full((6,), 0.5, dtype=torch.float64))
    scores = torch.randn(3, 11, generator=torch.Generator().manual_seed(0))
    greedy_row = scores[2].clone()
    out = together(torch.zeros(3, 1, dtype=torch.long), scores)
    assert [int(torch.isfinite(out[row]).sum()) for row in (0, 1)] == [1, 1]
    assert torch.equal(out[2], greedy_row)


def test_rollouts_never_contain_the_image_markup(tmp_path):
    from medzoo.core.interfaces.rollout_backend import RolloutRequest
    from medzoo.core.model.build import build_model
    from medzoo.core.training.engine_rollouts import EngineRollouts
    from medzoo.testing import TINY_MODEL

    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    fill = model.markup.fill_id

    def favour_the_image_token(_module, _inputs, logits):
        return logits.index_fill(-1, torch.tensor([fill]), 50.0)

    hook = model.language.model.lm_head.register_forward_hook(favour_the_image_token)
    try:
        from medzoo.core.inference import processor_for
        from medzoo.core.interfaces.conversation import Message

        prompt = processor_for(model).encode_text([Message("user", "Say something.")], 0, add_generation_prompt=True)
        requests = [RolloutRequest("p", [], None, 3, 11, 1.0, 1.0, 6, prompt=prompt)]
        completions = EngineRollouts().generate(model, requests)[0]
    finally:
        hook.remove()
    assert len(completions) == 3 and all(c.token_ids for c in completions)
    assert all(fill not in c.token_ids for c in completions)
