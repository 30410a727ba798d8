"""Training objectives: supervised next-token cross-entropy (``sft``) and preference optimisation (``dpo``)."""
