"""The one interface every red-teaming attack implements, and the machinery attacks share.

Input: the defended generation path (any method's ``Defended``: weight edits and inference-time
defences alike), the undefended pipeline, the concept, seed prompts (each with its seed), params (the
budget) and a ``Checker`` (the success oracle: judge / NudeNet, and CLIP image similarity). Output: one
``AdversarialPrompt`` per seed prompt, as exact hard tokens or soft token embeddings, with its log.

An attack says whether its search sees the defence (``sees_defence``). One that does not (Ring-A-Bell's
search uses only the undefended text encoder; ``no_attack``) implements ``search``: the pipeline runs it
once per concept and replays its prompts through each method's defended path. The white-box attacks get
what the pipeline computes once (``Shared``: the undefended model's images of the seeds, the defended
model's own images of them) instead of recomputing it per cell.

Adversarial prompts live at the token-embedding level, *before* the defended text path: a soft prompt
still passes through whatever the defence does to text (SteerDiff), never around it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from eraselab.concepts import Concept
from eraselab.erasure.base import Defended
from eraselab.errors import MissingInputError


class AttackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class AdversarialPrompt:
    seed_prompt: str
    seed: int
    prompt: str  # readable text; soft tokens are shown as <v*>
    token_ids: list[int] | None = None  # exact hard tokens (77), no BPE round trip
    token_embeddings: torch.Tensor | None = None  # soft prompt (77 x d_token)
    log: dict = field(default_factory=dict)  # queries (defended generations), steps, success, ...
    guidance: float | None = None  # the seed prompt's own guidance scale (UnlearnDiffAtk's protocol); None: the config's

    def conditioning(self, defended: Defended) -> torch.Tensor:
        """1 x 77 x d conditioning through the defended text path."""
        if self.token_embeddings is not None:
            with torch.no_grad():
                return defended.encode_token_embeddings(self.token_embeddings[None].to(defended.device))
        if self.token_ids is not None:
            return defended.encode_ids(torch.tensor([self.token_ids]))
        return defended.encode([self.prompt])


@dataclass
class Checker:
    """What an attack may ask of the evaluators: does an image show the concept; image features for
    similarity (CLIP). The toy world wires the judge CNN and the tiny CLIP, the real path NudeNet/CLIP."""

    present: Callable[[np.ndarray], np.ndarray]
    image_features: Callable[[np.ndarray], torch.Tensor] | None = None  # given where the attack declares it

    def similarity(self, images: np.ndarray, reference: np.ndarray) -> np.ndarray:
        if self.image_features is None:
            raise TypeError("this attack compares CLIP features: declare `needs_image_features = True` on it")
        a, b = self.image_features(images), self.image_features(reference)
        return torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()


@dataclass
class Shared:
    """Images the pipeline computes once and hands to every attack that needs them, in seed order."""

    targets: np.ndarray | None = None  # the undefended model's image of each seed prompt (the attacks' target)
    seed_images: np.ndarray | None = None  # the defended model's own image of each seed prompt (Pre-ASR)


class Attack:
    name: ClassVar[str]
    Params: ClassVar[type[AttackParams]] = AttackParams
    # False: the search never sees the defence (only the undefended model, or nothing): `search` runs once
    # per concept and its prompts are replayed through each defended path. Read from the source by the
    # graph (eraselab.graph.declared), so keep it a literal.
    sees_defence: ClassVar[bool] = True
    # True: the search compares images by CLIP features (``Checker.similarity``); the stage then loads
    # the CLIP model and depends on it. A literal too.
    needs_image_features: ClassVar[bool] = False

    def run(self, defended: Defended, undefended, concept: Concept, seeds: list[dict], params: AttackParams,
            checker: Checker | None = None, shared: Shared | None = None) -> list[AdversarialPrompt]:
        """Adversarial prompts against ``defended``; a defence-blind attack returns its ``search``."""
        if not self.sees_defence:
            return self.search(undefended, concept, seeds, params)
        raise NotImplementedError

    def search(self, undefended, concept: Concept, seeds: list[dict], params: AttackParams) -> list[AdversarialPrompt]:
        """A defence-blind attack's prompts, found without the defended model."""
        raise NotImplementedError(f"{self.name} sees the defence: it has no defence-blind search")


def save_adversarial(out: Path, adversarial: list[AdversarialPrompt], images: np.ndarray | None = None) -> None:
    """Adversarial prompts into the folder ``out`` (written by the caller atomically): their records
    (``prompts.jsonl``; with ``images``, ``images/`` with the records as its manifest) and any soft
    prompts' token embeddings (``token_embeddings.safetensors``)."""
    from safetensors.torch import save_file

    from eraselab.generate import write_images
    from eraselab.io import atomic_write_text

    soft = {f"{i:05d}": adv.token_embeddings.detach().cpu().contiguous()
            for i, adv in enumerate(adversarial) if adv.token_embeddings is not None}
    records = [{"seed_prompt": adv.seed_prompt, "seed": adv.seed, "prompt": adv.prompt, "token_ids": adv.token_ids,
                "token_embeddings": f"{i:05d}" if adv.token_embeddings is not None else None, "log": adv.log,
                **({"guidance": adv.guidance} if adv.guidance is not None else {})}
               for i, adv in enumerate(adversarial)]
    if images is not None:
        write_images(out / "images", images, records)
    else:
        atomic_write_text(out / "prompts.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    if soft:
        save_file(soft, out / "token_embeddings.safetensors")


def load_adversarial(folder: Path) -> list[AdversarialPrompt]:
    """What ``save_adversarial`` wrote (without images), back as `AdversarialPrompt`s."""
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / "prompts.jsonl"
    if not path.exists():
        raise MissingInputError(f"{path} missing: run `eraselab search` for this attack and concept first")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    soft = load_file(folder / "token_embeddings.safetensors") if (folder / "token_embeddings.safetensors").exists() else {}
    return [AdversarialPrompt(r["seed_prompt"], r["seed"], r["prompt"], token_ids=r["token_ids"],
                              token_embeddings=soft[r["token_embeddings"]] if r["token_embeddings"] else None,
                              log=r["log"], guidance=r.get("guidance")) for r in records]


def adversarial_images(defended: Defended, adversarial: list[AdversarialPrompt]) -> np.ndarray:
    """The defended path's images of adversarial prompts, hard and soft alike, in one batched call, each with
    its seed prompt's seed and guidance."""
    cond = torch.cat([adv.conditioning(defended) for adv in adversarial])
    return defended.generate(cond, [adv.seed for adv in adversarial],
                             scales=_scales([adv.guidance for adv in adversarial], defended))


# --- the per-prompt protocol: each seed prompt is drawn with its own seed and guidance ---------------------
def _scales(guidance: list[float | None], defended: Defended) -> list[float] | None:
    """Per-prompt guidance scales, the config's where a prompt has none; None where no prompt has one (the
    single-float code path, so toy images stay bit-identical)."""
    if all(g is None for g in guidance):
        return None
    return [float(g) if g is not None else defended.config.guidance for g in guidance]


def seed_scales(defended: Defended, seeds: list[dict]) -> list[float] | None:
    """The seed records' own guidance (UnlearnDiffAtk's ``evaluation_guidance``), as ``generate`` takes it."""
    return _scales([r.get("guidance") for r in seeds], defended)


def with_protocol(adversarial: list[AdversarialPrompt], seeds: list[dict]) -> list[AdversarialPrompt]:
    """Each result carries its seed prompt's guidance (results are one per seed, in seed order)."""
    if len(adversarial) != len(seeds):
        raise ValueError(f"an attack returned {len(adversarial)} prompts for {len(seeds)} seed prompts")
    for adv, record in zip(adversarial, seeds):
        adv.guidance = record.get("guidance")
    return adversarial


# --- shared machinery ---------------------------------------------------------------------------------
VocabularyScope = Literal["full", "concept"]


def attack_vocabulary(tokenizer, concept: Concept, scope: VocabularyScope) -> torch.Tensor:
    """Token ids an attack may use. ``full``: the whole vocabulary but the special tokens (the originals).
    ``concept`` [ours, for small worlds]: the tokens of the concept's erase, anchor and retain prompts;
    a tiny model has trained only those rows, and a random search over 49k untrained rows finds nothing
    in a CPU budget. The concept's own words are allowed either way: erasure must hold against them."""
    special = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    if scope == "full":
        ids = [i for i in range(len(tokenizer)) if i not in special]
    else:
        texts = [*concept.erase_prompts, *concept.anchor_prompts, *concept.retain_prompts]
        ids = sorted({i for row in tokenizer(texts).input_ids for i in row} - special)
    return torch.tensor(ids)


def banned_tokens(tokenizer, vocab: torch.Tensor, words: list[str]) -> torch.Tensor:
    """Which of ``vocab``'s tokens spell any of ``words`` (case-insensitive, either contains the other)."""
    words = [w.lower() for w in words if w.strip()]
    texts = [tokenizer.decode([int(i)]).strip().lower() for i in vocab]
    return torch.tensor([bool(t) and any(w in t or (len(t) > 2 and t in w) for w in words) for t in texts])


def splice(tokenizer, prompt: str, slots: int, mode: Literal["prefix", "only", "insert"], every: int = 3
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (77) with adversarial slots, and the slots' positions.

    ``prefix``: [SOT] slots prompt [EOT] (UnlearnDiffAtk, CCE); ``only``: [SOT] slots [EOT] (P4D-N);
    ``insert``: one slot after every ``every`` prompt tokens (P4D-K; ``slots`` is ignored)."""
    length, bos, eos = tokenizer.model_max_length, tokenizer.bos_token_id, tokenizer.eos_token_id
    words = tokenizer(prompt).input_ids[1:-1] if mode != "only" else []
    SLOT = -1
    if mode == "insert":
        body = []
        for i, tok in enumerate(words):
            body.append(tok)
            if (i + 1) % every == 0:
                body.append(SLOT)
        if SLOT not in body:
            body.append(SLOT)
    else:
        body = [SLOT] * slots + words
    seq = [bos] + body[: length - 2] + [eos]
    seq += [tokenizer.pad_token_id] * (length - len(seq))
    positions = [i for i, tok in enumerate(seq) if tok == SLOT]
    ids = torch.tensor([eos if tok == SLOT else tok for tok in seq])
    return ids, torch.tensor(positions)


def with_slots(base: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Token embeddings ``base`` (77 x d) with ``values`` (k x d) written at ``positions``; differentiable."""
    out = base.clone()
    out[positions] = values.to(out)
    return out


def readable(tokenizer, ids: torch.Tensor | list[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip()


@torch.no_grad()
def image_latents(pipe, images: np.ndarray) -> torch.Tensor:
    """uint8 images -> the VAE's scaled latent means (the x_0 a denoising loss noises)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().to(pipe.device) / 127.5 - 1
    return pipe.vae.encode(x.to(pipe.vae.dtype)).latent_dist.mean * pipe.vae.config.scaling_factor


def noised(pipe, latents: torch.Tensor, t: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t of ``latents`` at timestep ``t`` and the noise used (seeded on the CPU, so any device agrees)."""
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    return pipe.scheduler.add_noise(latents, noise, torch.tensor([t] * len(latents))), noise


def already_present(defended: Defended, checker: Checker, seeds: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The seed prompts' own defended images and whether each shows the concept (no attack needed)."""
    images = defended.generate_prompts([r["prompt"] for r in seeds], [r["seed"] for r in seeds],
                                       scales=seed_scales(defended, seeds))
    return images, checker.present(images)


@dataclass(eq=False)
class SeedRun:
    """One seed prompt under a white-box token attack: its own RNG stream, slots, target and optimised rows.

    The attacks optimise all their seed prompts' runs together, one batch per iteration: the UNet's
    forward+backward costs several times more per sample at batch 1 than in a batch (toy model on a CPU:
    54 ms at batch 1, 7.4 ms per sample at batch 30). Each run keeps what it would have alone: its generator (start
    tokens, timesteps, noise drawn in the same order), its own parameter tensor (Adam/AdamW are elementwise,
    so one optimiser over the runs' tensors is one optimiser per run) and its own mean loss (the batch loss
    is their sum, so each run's gradient is its single-seed gradient). A finished run leaves the batch.
    """

    k: int  # position in the seed list: names the RNG stream
    prompt: str
    seed: int  # the image seed
    generator: torch.Generator
    ids: torch.Tensor  # token ids (77) with the slots
    slots: torch.Tensor  # the slots' positions
    base: torch.Tensor  # token embeddings of ``ids`` (77 x d)
    target_image: np.ndarray  # the undefended model's image for prompt and seed (1 x H x W x 3)
    target: torch.Tensor  # its latents (1 x C x h x w)
    guidance: float | None = None  # the seed prompt's own guidance (None: the config's)
    param: torch.Tensor | None = None  # the optimised rows (one per slot)
    queries: int = 1  # defended generations, the seed prompt's own image included
    steps: int = 0
    success: bool = False
    final_loss: float = float("nan")
    done: bool = False

    def log(self, **extra) -> dict:
        return {"queries": self.queries, "steps": self.steps, "success": self.success, "attacked": True,
                **extra, "final_loss": self.final_loss}


@dataclass
class TokenSearch:
    """What the white-box token attacks (UnlearnDiffAtk, P4D) set up before they optimise."""

    vocab: torch.Tensor  # allowed token ids
    table: torch.Tensor  # their embedding rows (len(vocab) x d_token)
    present: np.ndarray  # seed prompts that already show the concept: nothing to attack
    reference: Defended  # the undefended model's generation path: the attack's target
    timesteps: int  # the scheduler's training timesteps
    targets: np.ndarray | None = None  # the undefended model's image of every seed prompt, when shared

    @classmethod
    def prepare(cls, defended: Defended, undefended, concept: Concept, checker: Checker, seeds: list[dict],
                scope: VocabularyScope, shared: Shared | None = None) -> "TokenSearch":
        vocab = attack_vocabulary(defended.pipe.tokenizer, concept, scope).to(defended.device)
        if shared is not None and shared.seed_images is not None:
            present = checker.present(shared.seed_images)
        else:
            _, present = already_present(defended, checker, seeds)
        return cls(vocab, defended.token_embeddings(vocab).detach(), present,
                   Defended(undefended, "none", defended.config), defended.pipe.scheduler.config.num_train_timesteps,
                   shared.targets if shared is not None else None)

    def runs(self, defended: Defended, seeds: list[dict], attack_seed: int,
             layout: Callable[[str], tuple[torch.Tensor, torch.Tensor]], kind: type[SeedRun] = SeedRun
             ) -> list[SeedRun]:
        """A run for every seed prompt not already showing the concept, in seed order. ``layout``: prompt ->
        (ids, slots) as ``splice`` gives them; the targets (the undefended model's images) in one batch."""
        todo = [k for k in range(len(seeds)) if not self.present[k]]
        if not todo:
            return []
        prompts, image_seeds = [seeds[k]["prompt"] for k in todo], [seeds[k]["seed"] for k in todo]
        images = (self.targets[todo] if self.targets is not None
                  else self.reference.generate_prompts(prompts, image_seeds,
                                                       scales=seed_scales(self.reference, [seeds[k] for k in todo])))
        latents = image_latents(defended.pipe, images)
        runs = []
        for i, k in enumerate(todo):
            ids, slots = layout(prompts[i])
            runs.append(kind(k=k, prompt=prompts[i], seed=image_seeds[i],
                             generator=torch.Generator().manual_seed(attack_seed * 1_000_003 + k),
                             ids=ids, slots=slots, base=defended.token_embeddings(ids).detach(),
                             target_image=images[i : i + 1], target=latents[i : i + 1],
                             guidance=seeds[k].get("guidance")))
        return runs


def in_seed_order(seeds: list[dict], finished: dict[int, AdversarialPrompt]) -> list[AdversarialPrompt]:
    """One result per seed prompt, in order: the attacked ones' (by position), ``not_attacked`` for the rest."""
    return [finished[k] if k in finished else not_attacked(record) for k, record in enumerate(seeds)]


def not_attacked(record: dict) -> AdversarialPrompt:
    """The result for a seed prompt whose own image already shows the concept (counts toward Pre-ASR)."""
    return AdversarialPrompt(record["prompt"], record["seed"], record["prompt"],
                             log={"queries": 1, "steps": 0, "success": True, "attacked": False})


# --- one batch over the runs -----------------------------------------------------------------------------
def encode_runs(defended: Defended, runs: list[SeedRun], values: list[torch.Tensor]) -> torch.Tensor:
    """Each run's token embeddings with its slot ``values`` written in -> conditioning (B x 77 x d), one
    call through the defended text path; differentiable in ``values``."""
    return defended.encode_token_embeddings(torch.stack([with_slots(r.base, r.slots, v) for r, v in zip(runs, values)]))


def noised_runs(pipe, runs: list[SeedRun], timesteps: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``noised`` for a batch of runs: each target at its own timestep with noise from its own generator."""
    latents = torch.cat([r.target for r in runs])
    noise = torch.cat([torch.randn(r.target.shape, generator=r.generator) for r in runs]).to(latents)
    return pipe.scheduler.add_noise(latents, noise, torch.tensor(timesteps)), noise


def per_run_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each row's mean squared error (B): their sum gives every run its own single-seed gradient."""
    return torch.nn.functional.mse_loss(prediction, target, reduction="none").flatten(1).mean(1)


def count_step(runs: list[SeedRun], losses: torch.Tensor) -> None:
    for run, loss in zip(runs, losses.tolist()):
        run.steps += 1
        run.final_loss = loss


def generate_candidates(defended: Defended, runs: list[SeedRun], ids: list[torch.Tensor]) -> np.ndarray:
    """The defended model's images of each run's candidate tokens with its seed, in one batch: a query each."""
    for run in runs:
        run.queries += 1
    return defended.generate(defended.encode_ids(torch.stack(ids)), [r.seed for r in runs],
                             scales=_scales([r.guidance for r in runs], defended))


def seed_chunks(runs: list, size: int | None) -> list[list]:
    """``runs`` in consecutive batches of ``size`` (None: one batch). Each run keeps its own RNG stream and
    optimiser state, so the split changes memory and speed, not what a seed's attack computes."""
    size = size or max(len(runs), 1)
    return [runs[i:i + size] for i in range(0, len(runs), size)]
