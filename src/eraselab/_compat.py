"""Environment guards that must run before heavy imports.

The CPU machines pin torch==2.13.0+cpu beside the PyPI torchvision 0.28.0, which is a CUDA build: its
``_C.so`` cannot load, so torchvision's own meta registrations fail with
``operator torchvision::nms does not exist`` and every library that imports torchvision (open_clip,
clean-fid, timm) fails with it. We register the missing op schemas plus a plain CPU ``nms`` before the
first import. Where torchvision's compiled ops load, this does nothing.
"""

from __future__ import annotations

import sys

import torch

_LIBRARIES: list = []  # keep torch.library handles alive for the life of the process


def _nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, boxes as (x1, y1, x2, y2); returns kept indices by score."""
    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return torch.stack(keep) if keep else torch.empty(0, dtype=torch.long)


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` work; return True when the CPU fallback had to be registered."""
    try:
        import torchvision  # noqa: F401

        return False
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
    # The failed import left half-initialised modules behind; drop them before importing again.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.impl("nms", _nms_cpu, "CPU")
    _LIBRARIES.append(library)
    import torchvision  # noqa: F401

    return True


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads; contention with an oversubscribed pool was measured 100x slower."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # can only be set once per process, before any parallel work
        pass


TORCHVISION_CPU_FALLBACK = ensure_torchvision()
