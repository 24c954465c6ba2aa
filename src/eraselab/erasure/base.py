"""The one interface every erasure method implements.

``erase`` turns (base pipeline, concept, params) into an artifact folder (modified weights as
safetensors, a LoRA, or an inference-time config) plus ``artifact.json`` naming the method. ``load``
turns base pipeline + artifact into a ``Defended`` generation path. The generator, every attack and every
evaluator use only ``Defended``, never the method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from eraselab.concepts import Concept
from eraselab.errors import ArtifactError, shown
from eraselab.generate import CFG, Guidance, SamplingConfig, encode_prompts, sample
from eraselab.models.text_encoding import encode_token_embeddings, token_embeddings, tokenize


class MethodParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class EraseContext:
    """What a method may use besides the pipeline: image features (the toy world's tiny open_clip, or
    CLIP ViT-L/14) for methods that judge their own generations (Dark Miner's verification)."""

    image_features: Callable[[np.ndarray], torch.Tensor] | None = None


class Defended:
    """The defended generation path: text or token embeddings -> conditioning -> images.

    Weight-editing methods hand over an edited pipeline; inference-time defences replace a step: the
    text path (``encode_token_embeddings``, e.g. SteerDiff), the unconditional branch (``uncond``, the
    negative prompt) or the guidance rule (``guidance``, SLD). Generation and ``noise`` both go through
    these, so an attack on ``noise`` attacks the whole defended path, not only its UNet.
    """

    def __init__(self, pipe, method: str, config: SamplingConfig, uncond_prompt: str = "",
                 guidance: Guidance = CFG):
        self.pipe, self.method, self.config, self.guidance = pipe, method, config, guidance
        self.uncond_prompt = uncond_prompt
        self._fixed: dict[str, torch.Tensor] = {}

    def fixed_context(self, prompt: str) -> torch.Tensor:
        """1 x 77 x d conditioning of a fixed prompt (empty, negative), encoded once per path."""
        if prompt not in self._fixed:
            with torch.no_grad():
                self._fixed[prompt] = encode_prompts(self.pipe, [prompt])
        return self._fixed[prompt]

    @property
    def device(self):
        return self.pipe.unet.device

    # --- text path ---------------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return tokenize(self.pipe.tokenizer, prompts, self.device)

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return token_embeddings(self.pipe.text_encoder, ids.to(self.device))

    def encode_token_embeddings(self, embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N x 77 x d) -> conditioning; differentiable (attacks optimise through it)."""
        return encode_token_embeddings(self.pipe.text_encoder, embeds)

    @torch.no_grad()
    def encode_ids(self, ids: torch.Tensor, batch: int = 256) -> torch.Tensor:
        return torch.cat([self.encode_token_embeddings(self.token_embeddings(ids[i : i + batch]))
                          for i in range(0, len(ids), batch)])

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return self.encode_ids(self.tokenize(prompts))

    # --- sampling -----------------------------------------------------------------------------------
    def generate(self, cond: torch.Tensor, seeds: list[int], progress: bool = False,
                 scales: list[float] | None = None) -> np.ndarray:
        return sample(self.pipe, cond, seeds, self.config, uncond=self.fixed_context(self.uncond_prompt),
                      guidance=self.guidance, progress=progress, scales=scales)

    def generate_prompts(self, prompts: list[str], seeds: list[int], progress: bool = False,
                         scales: list[float] | None = None) -> np.ndarray:
        return self.generate(self.encode(prompts), seeds, progress=progress, scales=scales)

    def noise(self, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The defended path's conditional noise prediction, differentiable in ``cond``.

        Defined as what plain CFG (empty-prompt unconditional branch, scale s) would need as conditional
        prediction to take the defended path's step: eps_eff = eps_empty + (eps_defended - eps_empty) / s.
        For a weight edit this is exactly the edited UNet's eps(x_t, t, cond); for a negative prompt or
        SLD it contains the defence, so an attack's loss sees what sampling does. ``t``: one timestep, or
        one per row (the attacks batch their seed prompts, each at its own timestep).
        """
        unet = self.pipe.unet
        t = torch.as_tensor(t, device=latents.device)
        if self.uncond_prompt == "" and type(self.guidance) is Guidance:
            return unet(latents, t, encoder_hidden_states=cond).sample
        n = len(latents)
        empty = self.fixed_context("").expand(n, -1, -1)
        uncond = self.fixed_context(self.uncond_prompt).expand(n, -1, -1)
        extras = [e.to(cond).expand(n, -1, -1) for e in self.guidance.extra_contexts()]
        contexts = [empty, uncond, cond, *extras]
        rows_t = t.flatten()
        eps_e, eps_u, eps_c, *eps_x = unet(latents.repeat(len(contexts), 1, 1, 1),
                                           rows_t.repeat(len(contexts)) if len(rows_t) > 1 else t,
                                           encoder_hidden_states=torch.cat(contexts)).sample.chunk(len(contexts))
        scale, total = self.config.guidance, self.pipe.scheduler.config.num_train_timesteps
        values = rows_t.unique()
        if len(values) == 1:
            guided = self.guidance.combine(eps_u, eps_c, eps_x, scale, 1.0 - float(values[0]) / total, {})
        else:  # a guidance rule takes one trajectory position (SLD's warm-up): rows combined per timestep
            guided = torch.empty_like(eps_c)
            for value in values:
                rows = rows_t == value
                guided[rows] = self.guidance.combine(eps_u[rows], eps_c[rows], [e[rows] for e in eps_x], scale,
                                                     1.0 - float(value) / total, {})
        return eps_e + (guided - eps_e) / scale


class ErasureMethod:
    name: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    edits_weights: ClassVar[bool]
    seeded: ClassVar[bool] = False  # True: trains with `params.seed` (grid.train_seeds reruns it with others)

    def erase(self, pipe, concept: Concept, params: MethodParams, out: Path, context: EraseContext | None = None
              ) -> dict:
        """Write the artifact's files into ``out`` (a temp folder); return a log: ``loss`` (the training
        curve, a DVC plot), ``timing`` (seconds, kept out of the artifact) and the rest (artifact.json)."""
        raise NotImplementedError

    def load(self, pipe, artifact: Path, config: SamplingConfig) -> Defended:
        raise NotImplementedError


def write_artifact_manifest(out: Path, method: str, concept: Concept, params: MethodParams, log: dict) -> None:
    manifest = {"method": method, "concept": concept.name, "params": params.model_dump(mode="json"), "log": log}
    (out / "artifact.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def erase_artifact(method: str, eraser: ErasureMethod, pipe, concept: Concept, params: MethodParams, out: Path,
                   context: EraseContext | None = None) -> tuple[list, dict, dict]:
    """Run ``eraser`` (registered as ``method``) into ``out`` and write its artifact.json: a complete artifact, as `load` expects.
    Returns the training curve, the timing (both kept out of the artifact: it stays bit-identical across
    reruns) and the rest of the log (in artifact.json)."""
    log = eraser.erase(pipe, concept, params, out, context)
    curve, timing = log.pop("loss", []), log.pop("timing", {})
    write_artifact_manifest(out, method, concept, params, log)
    return curve, timing, log


def read_manifest(artifact: Path) -> dict:
    """An artifact folder's artifact.json, checked: present, JSON, naming an installed method."""
    from eraselab.registry import table

    path = Path(artifact) / "artifact.json"
    if not path.is_file():
        raise ArtifactError(f"{path} missing: {artifact} is no erasure artifact (`eraselab erase` writes one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        line = f" line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ArtifactError(f"{path}{line}: not a JSON artifact manifest ({err.args[0] if err.args else err})") from None
    installed = sorted(table("methods"))
    name = manifest.get("method") if isinstance(manifest, dict) else None
    if name not in installed:
        raise ArtifactError(f"{path}: method {shown(name)} is not installed; valid choices: {', '.join(installed)}")
    return manifest


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file of an artifact; a missing, truncated or foreign file is named, never unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ArtifactError(f"{path} missing from its artifact folder")
    try:
        return load_file(Path(path))
    except (SafetensorError, OSError) as err:
        raise ArtifactError(f"{path}: not a readable safetensors file ({err}); truncated or another format") from None


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, model: str) -> None:
    """Every stored tensor names a tensor of ``model`` with the same shape (an artifact of another
    architecture stops here, before it is applied)."""
    for name, value in sorted(tensors.items()):
        if name not in expected:
            raise ArtifactError(f"{path}: tensor {name!r} is not in this {model} (made for another architecture?)")
        if tuple(value.shape) != tuple(expected[name].shape):
            raise ArtifactError(f"{path}: tensor {name!r} has shape {tuple(value.shape)}, this {model} "
                                f"{tuple(expected[name].shape)} (made for another architecture?)")


def load_defended(pipe, artifact: Path, config: SamplingConfig) -> Defended:
    """Whatever method made ``artifact``, return its defended generation path."""
    from eraselab.registry import method

    name = read_manifest(Path(artifact))["method"]
    return method(name)().load(pipe, Path(artifact), config)


# --- weight edits: only the changed tensors are stored ------------------------------------------------
EDIT_FILE = "unet_edit.safetensors"


def save_unet_edit(unet, names: list[str], out: Path) -> None:
    """Store the edited UNet tensors (``names``) as safetensors; the rest stays the base model's."""
    from safetensors.torch import save_file

    state = unet.state_dict()
    save_file({n: state[n].detach().cpu().contiguous() for n in sorted(names)}, Path(out) / EDIT_FILE)


TEXT_EDIT_FILE = "text_encoder_edit.safetensors"


def save_text_encoder_edit(text_encoder, names: list[str], out: Path) -> None:
    """Store the edited text-encoder tensors (``names``) as safetensors, as `save_unet_edit` does the UNet's."""
    from safetensors.torch import save_file

    state = text_encoder.state_dict()
    save_file({n: state[n].detach().cpu().contiguous() for n in sorted(names)}, Path(out) / TEXT_EDIT_FILE)


def load_text_encoder_edit(pipe, artifact: Path):
    """Apply a stored text-encoder edit in place; every tensor must exist in the base encoder, shaped alike."""
    path = Path(artifact) / TEXT_EDIT_FILE
    edit = read_tensors(path)
    check_tensors(edit, pipe.text_encoder.state_dict(), path, "text encoder")
    pipe.text_encoder.load_state_dict(edit, strict=False)
    return pipe


def load_unet_edit(pipe, artifact: Path):
    """Apply a stored edit to ``pipe.unet`` in place; every stored tensor must exist in the base UNet, shaped alike."""
    path = Path(artifact) / EDIT_FILE
    edit = read_tensors(path)
    check_tensors(edit, pipe.unet.state_dict(), path, "UNet")
    pipe.unet.load_state_dict(edit, strict=False)
    return pipe
