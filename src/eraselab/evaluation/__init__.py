"""Evaluators: read generated images and their manifest, write metrics."""
