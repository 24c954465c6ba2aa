"""Erasure methods: one module each behind `ErasureMethod` (erasure/base.py), listed in eraselab.registry."""
