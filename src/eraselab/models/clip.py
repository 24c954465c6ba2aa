"""A tiny open_clip model trained contrastively on world image-caption pairs.

Built from open_clip's own ``CLIP`` class (custom vision/text configs) and trained with its ``ClipLoss``,
tokenized by open_clip's tokenizer (the same CLIP BPE). In the toy world it scores CLIP similarity and
drives Dark Miner's verification; on the real path the same code loads ViT-L/14.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from open_clip.model import CLIP
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from eraselab.io import atomic_dir, read_config
from eraselab.world import Labels, sample_caption
from eraselab.world.dataset import WorldSpec, load_split
from eraselab.world.vocabulary import PHRASINGS

MEAN, STD = 0.5, 0.5  # our own normalisation: the tiny model never saw OpenAI's statistics


def model_config(cp, image_size: int) -> dict:
    return {
        "embed_dim": cp.embed_dim,
        "vision_cfg": {"image_size": image_size, "patch_size": cp.patch_size, "width": cp.vision_width,
                       "layers": cp.vision_layers, "head_width": cp.vision_width // cp.heads, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": cp.text_width, "heads": cp.heads,
                     "layers": cp.text_layers, "mlp_ratio": 2.0},
    }


class ClipScorer:
    """Image and text embeddings, and CLIP score = 100 * max(cos, 0) (Hessel et al. 2021)."""

    def __init__(self, model: CLIP, image_size: int):
        self.model = model.eval()
        self.image_size = image_size
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32")  # the CLIP BPE, shipped with open_clip

    def _pixels(self, images_u8: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float() / 255
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
        return (x - MEAN) / STD

    @torch.no_grad()
    def image_features(self, images_u8: np.ndarray, batch: int = 512) -> torch.Tensor:
        feats = [self.model.encode_image(self._pixels(images_u8[i : i + batch]), normalize=True)
                 for i in range(0, len(images_u8), batch)]
        return torch.cat(feats)

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts), normalize=True)

    def score(self, images_u8: np.ndarray, texts: list[str]) -> np.ndarray:
        cos = (self.image_features(images_u8) * self.text_features(texts)).sum(-1)
        return (100 * cos.clamp(min=0)).numpy()

    def spec(self) -> dict:
        """The declared metric, written beside every CLIP score."""
        return {"model": "toy open_clip CLIP, trained in-pipeline (models/clip)", "pretrained": None,
                "image_size": self.image_size, "normalisation": [MEAN, STD], "scale": 100,
                "formula": "100 * max(cos(image, text), 0)"}


def zero_shot_accuracy(scorer: ClipScorer, spec: WorldSpec, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    feats = scorer.image_features(images)
    out = {}
    for i, (kind, names) in enumerate(spec.kinds.items()):
        text = scorer.text_features([f"a {n} shape" if kind == "shape" else f"a {n} object" for n in names])
        pred = (feats @ text.T).argmax(1).numpy()
        out[kind] = float((pred == labels[:, i]).mean())
    return out


def train_clip(params, world_dir: Path, out: Path) -> dict:
    cp = params.clip
    spec = WorldSpec.from_params(params.world)
    torch.manual_seed(cp.seed)
    generator = torch.Generator().manual_seed(cp.seed)
    rng = random.Random(cp.seed)
    images, labels = load_split(world_dir, "judge_train")
    names = [Labels(spec.shapes[s], spec.colours[c], spec.textures[t]) for s, c, t in labels]
    config = model_config(cp, spec.image_size)
    model = CLIP(**config)
    scorer = ClipScorer(model, spec.image_size)
    pixels = scorer._pixels(images)
    loss_fn = ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=cp.lr, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cp.lr, total_steps=cp.steps)
    model.train()
    for _ in tqdm(range(cp.steps), desc="clip", mininterval=5):
        idx = torch.randint(len(pixels), (cp.batch_size,), generator=generator).tolist()
        # all phrasings: CLIP is the evaluator, it should read any caption the grid may use
        texts = [sample_caption(names[i], rng, 0.2, 0.3, phrasings=PHRASINGS) for i in idx]
        img, txt, scale = model(pixels[idx], scorer.tokenizer(texts))
        loss = loss_fn(img, txt, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    test_images, test_labels = load_split(world_dir, "judge_test")
    acc = zero_shot_accuracy(scorer, spec, test_images, test_labels)
    with atomic_dir(out) as tmp:
        save_file(model.state_dict(), tmp / "open_clip.safetensors")
        (tmp / "config.json").write_text(json.dumps({"model": config, "image_size": spec.image_size}, indent=2))
    return {"zero_shot_accuracy": acc, "final_loss": float(loss)}


def load_clip(path: Path) -> ClipScorer:
    path = Path(path)
    config = read_config(path, "clip")
    model = CLIP(**config["model"])
    model.load_state_dict(load_file(path / "open_clip.safetensors"))
    return ClipScorer(model, config["image_size"])
