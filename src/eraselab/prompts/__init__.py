"""Prompt sets: each record is {prompt, seed, labels, split}; the generator and evaluators read these."""

from eraselab.prompts.world_prompts import evaluation_prompts, read_prompts, write_prompts

__all__ = ["evaluation_prompts", "read_prompts", "write_prompts"]
