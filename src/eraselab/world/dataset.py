"""Render the world's splits to disk: images (uint8) and integer labels per concept kind."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eraselab.errors import MissingInputError
from eraselab.io import atomic_dir
from eraselab.world.render import Geometry, render
from eraselab.world.vocabulary import FRAMES, HELDOUT, NP_FORMS, SYNONYMS, TRAIN_PHRASINGS

SPLITS = {"train": 0, "judge_train": 1, "judge_test": 2}  # seed offsets: splits never share images


@dataclass(frozen=True)
class WorldSpec:
    """Everything that fixes the world's images; built from ``params.world``."""

    seed: int
    image_size: int
    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    textures: tuple[str, ...]
    geometry: Geometry

    @classmethod
    def from_params(cls, p) -> "WorldSpec":
        geometry = Geometry(tuple(p.radius), p.jitter, p.rotation, p.stripe_period, p.dot_spacing, p.colour_jitter)
        return cls(p.seed, p.image_size, tuple(p.shapes), tuple(p.colours), tuple(p.textures), geometry)

    @property
    def kinds(self) -> dict[str, tuple[str, ...]]:
        return {"shape": self.shapes, "colour": self.colours, "texture": self.textures}


def render_split(spec: WorldSpec, split: str, n: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with labels (n x 3: shape, colour, texture indices); balanced, shuffled, seeded."""
    rng = np.random.default_rng([spec.seed, SPLITS[split]])
    sizes = [len(spec.shapes), len(spec.colours), len(spec.textures)]
    combos = np.stack(np.unravel_index(np.arange(n) % np.prod(sizes), sizes), 1)  # balanced over combinations
    labels = combos[rng.permutation(n)]
    images = np.empty((n, spec.image_size, spec.image_size, 3), np.uint8)
    for i in tqdm(range(n), desc=f"render {split}", disable=not progress, mininterval=2):
        s, c, t = labels[i]
        images[i] = render(spec.shapes[s], spec.colours[c], spec.textures[t], spec.image_size, spec.geometry, rng)
    return images, labels.astype(np.int64)


def write_world(spec: WorldSpec, sizes: dict[str, int], out: Path) -> None:
    with atomic_dir(out) as tmp:
        for split, n in sizes.items():
            images, labels = render_split(spec, split, n, progress=True)
            np.savez(tmp / f"{split}.npz", images=images, labels=labels)
        meta = {
            "spec": asdict(spec),
            "concepts": {kind: {name: list(SYNONYMS[kind][name]) for name in names} for kind, names in spec.kinds.items()},
            "frames": list(FRAMES),
            "np_forms": list(NP_FORMS),
            "train_phrasings": [list(p) for p in TRAIN_PHRASINGS],
            "heldout_phrasings": [list(p) for p in HELDOUT],
            "sizes": sizes,
        }
        (tmp / "world.json").write_text(json.dumps(meta, indent=2))


def load_split(world_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    path = Path(world_dir) / f"{split}.npz"
    if not path.exists():
        raise MissingInputError(f"{path} missing: run `eraselab world` first (valid splits: {', '.join(SPLITS)})")
    with np.load(path) as data:
        return data["images"], data["labels"]
