"""Red-teaming attacks: one module each behind `Attack` (attacks/base.py), listed in eraselab.registry."""
