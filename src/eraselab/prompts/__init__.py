"""Prompt sets: each record is {prompt, seed, labels, split}; the generator and evaluators read these.

The toy world's sets: ``world_prompts``; the real path's (I2P, COCO, UnlearnDiffAtk): ``real_prompts``.
"""
