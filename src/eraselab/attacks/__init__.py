"""Red-teaming attacks: one module each behind `Attack` (attacks/base.py), registered as entry points (eraselab.registry)."""
