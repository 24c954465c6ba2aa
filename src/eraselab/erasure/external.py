"""`external`: an erased model made elsewhere, put through every attack and metric like any other method.

Per concept, params name what to load on top of the base model (``erase.external.models.<concept>``):
- ``pipeline``: a diffusers pipeline folder; its ``unet/`` and ``text_encoder/`` safetensors are used (a
  folder holding only one of them is fine);
- ``unet`` and/or ``text_encoder``: safetensors state dicts in diffusers naming (a full module or only
  the edited tensors, e.g. ESD's cross-attention keys);
- ``lora``: a LoRA safetensors file in diffusers/peft or kohya (``lora_unet_…``) naming, loaded with
  diffusers' LoRA loader and fused at ``lora_scale``.

The artifact keeps only what differs from the base model (the UNet's and text encoder's changed tensors),
so a full fine-tuned UNet and an edit of a few layers cost what they change. Every file is checked before
anything is applied: present, readable safetensors (never unpickled), each tensor named and shaped as in
this base model. The files are data dependencies of the erase job: editing one reruns its cells.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from eraselab.erasure.base import (ArtifactError, Defended, ErasureMethod, MethodParams, check_tensors,
                                   load_text_encoder_edit, load_unet_edit, read_tensors, save_text_encoder_edit,
                                   save_unet_edit)
PIPELINE_FILES = {"unet": "unet/diffusion_pytorch_model.safetensors", "text_encoder": "text_encoder/model.safetensors"}


class ModelSource(BaseModel):
    """What to load for one concept: a pipeline folder, module state dicts, and/or a LoRA."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pipeline: str = ""
    unet: str = ""
    text_encoder: str = ""
    lora: str = ""
    lora_scale: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _something(self):
        if not (self.pipeline or self.unet or self.text_encoder or self.lora):
            raise ValueError("names no file; set pipeline, unet, text_encoder or lora")
        if self.pipeline and (self.unet or self.text_encoder):
            raise ValueError("pipeline already holds the unet and text_encoder; set either, not both")
        return self

    def files(self) -> list[str]:
        return [p for p in (self.pipeline, self.unet, self.text_encoder, self.lora) if p]


class ExternalParams(MethodParams):
    models: dict[str, ModelSource] = {}  # concept -> its erased model


def _state_files(source: ModelSource) -> dict[str, Path]:
    """module -> safetensors file to load into it."""
    if source.pipeline:
        folder = Path(source.pipeline).expanduser()
        if not folder.is_dir():
            raise ArtifactError(f"{folder}: no such pipeline folder")
        found = {m: folder / f for m, f in PIPELINE_FILES.items() if (folder / f).is_file()}
        if not found:
            raise ArtifactError(f"{folder}: neither {' nor '.join(PIPELINE_FILES.values())} (a diffusers pipeline "
                                f"folder saved with safetensors)")
        return found
    return {m: Path(getattr(source, m)).expanduser() for m in PIPELINE_FILES if getattr(source, m)}


def _load_lora(pipe, path: Path, scale: float) -> None:
    if not path.is_file():
        raise ArtifactError(f"{path} missing")
    read_tensors(path)  # readable safetensors before diffusers sees it
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="external")
    except (ValueError, KeyError, RuntimeError) as err:
        raise ArtifactError(f"{path}: LoRA does not fit this model: {str(err).strip().splitlines()[0][:200]} "
                            f"(made for another architecture?)") from None
    pipe.fuse_lora(lora_scale=scale, adapter_names=["external"])
    pipe.unload_lora_weights()


def _changed(module, before: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, v in module.state_dict().items() if not torch.equal(v, before[n])]


class External(ErasureMethod):
    name = "external"
    Params = ExternalParams
    edits_weights = True
    input_files = "models"  # params key whose per-concept file paths are data dependencies of the erase job

    def erase(self, pipe, concept, params: ExternalParams, out, context=None):
        from eraselab.params import ParamsError

        source = params.models.get(concept.name)
        if source is None:
            raise ParamsError(f"erase.external.models.{concept.name}: missing; name the erased model for this concept "
                            f"(pipeline, unet, text_encoder or lora); concepts given: "
                            f"{', '.join(params.models) or 'none'}")
        modules = {"unet": pipe.unet, "text_encoder": pipe.text_encoder}
        before = {m: {k: v.clone() for k, v in module.state_dict().items()} for m, module in modules.items()}
        loaded = {m: read_tensors(path) for m, path in _state_files(source).items()}  # all checked, then applied
        for m, tensors in loaded.items():
            check_tensors(tensors, before[m], _state_files(source)[m], "UNet" if m == "unet" else "text encoder")
        for m, tensors in loaded.items():
            modules[m].load_state_dict(tensors, strict=False)
        if source.lora:
            _load_lora(pipe, Path(source.lora).expanduser(), source.lora_scale)
        changed = {m: _changed(module, before[m]) for m, module in modules.items()}
        if not any(changed.values()):
            raise ArtifactError(f"erase.external.models.{concept.name}: {', '.join(source.files())} change nothing in "
                                f"the base model (the base model itself?)")
        save_unet_edit(pipe.unet, changed["unet"], out)
        save_text_encoder_edit(pipe.text_encoder, changed["text_encoder"], out)
        return {"source": source.model_dump(mode="json"), "changed_tensors": {m: len(v) for m, v in changed.items()}}

    def load(self, pipe, artifact, config):
        return Defended(load_text_encoder_edit(load_unet_edit(pipe, artifact), artifact), self.name, config)
