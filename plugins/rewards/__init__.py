"""Built-in verifiable rewards for objectives that learn from rewards (GRPO); one reward per module."""
