"""Language models: tiny GPT-NeoX training (train), checkpoint loading (checkpoints) and revision conventions (revisions)."""
