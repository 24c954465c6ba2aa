"""The toy world's concept judge: a small CNN with one head per concept kind.

It plays the part NudeNet and an ImageNet classifier play on the real path: every rate, ASR and
accuracy is read off it, so the stage refuses to finish below ``judge.min_accuracy``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from eraselab.io import atomic_dir, read_config
from eraselab.world.dataset import WorldSpec, load_split


class JudgeCNN(nn.Module):
    def __init__(self, classes: dict[str, list[str]], channels: list[int]):
        super().__init__()
        self.classes = classes
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.GroupNorm(8, c), nn.SiLU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(8, c), nn.SiLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({kind: nn.Linear(c_in, len(names)) for kind, names in classes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {kind: head(h) for kind, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images_u8: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
        """uint8 NHWC -> per kind, the predicted class index."""
        self.eval()
        out: dict[str, list] = {k: [] for k in self.classes}
        for i in range(0, len(images_u8), batch):
            logits = self(_to_input(images_u8[i : i + batch]))
            for kind, v in logits.items():
                out[kind].append(v.argmax(1).numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


def _to_input(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur and noise, so the judge also reads the soft, slightly noisy images a small VAE decodes."""
    blur = torch.rand(len(x), 1, 1, 1, generator=generator) < 0.5
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    x = torch.where(blur, blurred, x)
    return x + 0.06 * torch.rand(len(x), 1, 1, 1, generator=generator) * torch.randn(x.shape, generator=generator)


def accuracy(model: JudgeCNN, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = model.predict(images)
    return {kind: float((pred[kind] == labels[:, i]).mean()) for i, kind in enumerate(model.classes)}


def train_judge(params, world_dir: Path, out: Path) -> dict:
    jp = params.judge
    spec = WorldSpec.from_params(params.world)
    torch.manual_seed(jp.seed)
    generator = torch.Generator().manual_seed(jp.seed)
    images, labels = load_split(world_dir, "judge_train")
    test_images, test_labels = load_split(world_dir, "judge_test")
    classes = {kind: list(names) for kind, names in spec.kinds.items()}
    model = JudgeCNN(classes, jp.channels)
    x_all, y_all = _to_input(images), torch.from_numpy(labels)
    opt = torch.optim.AdamW(model.parameters(), lr=jp.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=jp.lr, total_steps=jp.steps)
    model.train()
    for _ in tqdm(range(jp.steps), desc="judge", mininterval=5):
        idx = torch.randint(len(x_all), (jp.batch_size,), generator=generator)
        logits = model(_augment(x_all[idx], generator))
        loss = sum(F.cross_entropy(logits[k], y_all[idx, i]) for i, k in enumerate(classes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    acc = accuracy(model, test_images, test_labels)
    worst = min(acc, key=acc.get)
    if acc[worst] < jp.min_accuracy:
        raise RuntimeError(f"judge held-out accuracy for {worst} is {acc[worst]:.4f} < judge.min_accuracy "
                           f"{jp.min_accuracy}; raise judge.steps or judge.channels")
    with atomic_dir(out) as tmp:
        save_file(model.state_dict(), tmp / "judge.safetensors")
        (tmp / "config.json").write_text(json.dumps({"classes": classes, "channels": jp.channels}, indent=2))
    return {"heldout_accuracy": acc, "n_test": int(len(test_labels))}


def load_judge(path: Path) -> JudgeCNN:
    path = Path(path)
    config = read_config(path, "judge")
    model = JudgeCNN(config["classes"], config["channels"])
    model.load_state_dict(load_file(path / "judge.safetensors"))
    return model.eval()
