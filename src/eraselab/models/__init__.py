"""Models: the toy base model and its components, the judge, the tiny CLIP, and pipeline loading."""

from eraselab import _compat  # noqa: F401  (before anything imports torchvision)
from eraselab.models.loading import ModelUnavailableError, load_pipeline, resolve_device

__all__ = ["ModelUnavailableError", "load_pipeline", "resolve_device"]
