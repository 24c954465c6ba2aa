"""Erasure methods: one module each behind `ErasureMethod` (erasure/base.py), registered as entry points (eraselab.registry)."""
