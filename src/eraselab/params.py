"""params.yaml schema: validated once, before any compute; stages receive typed values.

Every error names the offending key (``world.shapes.1``) and, where the value comes from a fixed set,
the valid choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eraselab.errors import UserError, shown, where
from eraselab.evaluation.clip_score import ClipScoreSpec
from eraselab.evaluation.fid import FidSpec
from eraselab.registry import ATTACKS, METHODS
from eraselab.world.vocabulary import SYNONYMS

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class ParamsError(UserError, ValueError):
    """Bad params: the message names the file and line, the key, the bad value and the valid choices."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_concepts(kind: str, values: list[str]) -> list[str]:
    valid = list(SYNONYMS[kind])
    for value in values:
        if value not in valid:
            raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(valid)}")
    if len(set(values)) != len(values):
        raise ValueError(f"duplicate {kind} in {values}")
    if len(values) < 2:
        raise ValueError(f"need at least two {kind}s to tell apart, got {values}")
    return values


class WorldParams(Section):
    seed: NonNegInt = 0
    image_size: Annotated[int, Field(ge=16, le=256)] = 32
    shapes: list[str] = list(SYNONYMS["shape"])
    colours: list[str] = list(SYNONYMS["colour"])
    textures: list[str] = list(SYNONYMS["texture"])
    radius: tuple[PositiveFloat, PositiveFloat] = (0.30, 0.40)
    jitter: Annotated[float, Field(ge=0, le=0.25)] = 0.03
    rotation: Annotated[float, Field(ge=0, le=180)] = 0.0
    stripe_period: PositiveFloat = 6.0
    dot_spacing: PositiveFloat = 6.0
    colour_jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.04
    n_train: PositiveInt = 20000
    n_judge_train: PositiveInt = 8000
    n_judge_test: PositiveInt = 2000

    _shapes = field_validator("shapes")(lambda v: _check_concepts("shape", v))
    _colours = field_validator("colours")(lambda v: _check_concepts("colour", v))
    _textures = field_validator("textures")(lambda v: _check_concepts("texture", v))

    @field_validator("radius")
    @classmethod
    def _radius(cls, v):
        if not v[0] <= v[1] <= 0.5:
            raise ValueError(f"need min <= max <= 0.5 (fraction of the image), got {list(v)}")
        return v


class VaeParams(Section):
    block_channels: list[PositiveInt] = [16, 32, 64]
    latent_channels: PositiveInt = 4
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    kl_weight: Annotated[float, Field(ge=0)] = 1e-6


class TextEncoderParams(Section):
    hidden_size: PositiveInt = 64
    layers: PositiveInt = 2
    heads: PositiveInt = 4
    intermediate_size: PositiveInt = 128


class UnetParams(Section):
    block_channels: list[PositiveInt] = [32, 64, 64]
    layers_per_block: PositiveInt = 1
    attention_head_dim: PositiveInt = 8


class DiffusionTrainParams(Section):
    steps: PositiveInt = 3000
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    warmup: NonNegInt = 200
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = 0.999
    min_snr_gamma: Annotated[float, Field(ge=0)] = 5.0
    caption_dropout: Probability = 0.1
    drop_colour: Probability = 0.15
    drop_texture: Probability = 0.3


class BaseModelParams(Section):
    seed: NonNegInt = 0
    threads: PositiveInt = 2
    vae: VaeParams = VaeParams()
    text_encoder: TextEncoderParams = TextEncoderParams()
    unet: UnetParams = UnetParams()
    train: DiffusionTrainParams = DiffusionTrainParams()


class JudgeParams(Section):
    seed: NonNegInt = 0
    threads: PositiveInt = 2
    channels: list[PositiveInt] = [32, 64, 128]
    steps: PositiveInt = 600
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    min_accuracy: Probability = 0.99  # the stage fails below this: a weak judge makes every metric wrong


class ClipParams(Section):
    seed: NonNegInt = 0
    threads: PositiveInt = 2
    embed_dim: PositiveInt = 64
    vision_width: PositiveInt = 64
    vision_layers: PositiveInt = 2
    patch_size: PositiveInt = 4
    text_width: PositiveInt = 64
    text_layers: PositiveInt = 2
    heads: PositiveInt = 4
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3


class ModelParams(Section):
    """Which text-to-image model later stages use: a local directory built by base_model, or a hub id."""

    source: Literal["base_model", "hub"] = "base_model"
    hub_id: str = "CompVis/stable-diffusion-v1-4"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fp16: bool = False  # inference stages only; erasure always trains in fp32
    # diffusers' attention slicing. Off: with PyTorch's fused attention it saved no memory on SD v1.4 and
    # was 1.4-2.3x slower (H100, benchmarks/sd14_cuda_smoke.py); kept for GPUs without fused attention.
    attention_slicing: bool = False


class PromptsParams(Section):
    seed: NonNegInt = 0
    per_combination: PositiveInt = 4  # held-out prompts per (shape, colour, texture)
    per_concept: PositiveInt = 60  # prompts per concept in each of target_train, target_heldout, retain
    attack_seeds: PositiveInt = 30  # the first N target_train prompts seed every attack
    variants_per_family: NonNegInt = 8  # natural variations per family (prompts.variants); 0: no variants set


def _names(what: str, table: dict):
    def check(values: list[str]) -> list[str]:
        for value in values:
            if value not in table:
                raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(table)}")
        if len(set(values)) != len(values) or not values:
            raise ValueError(f"need a non-empty list without duplicates, got {values}")
        return values

    return check


class GridParams(Section):
    """The method x concept x attack grid. Every cell is its own cached stage."""

    concepts: list[str] = ["red", "star", "striped"]
    methods: list[str] = ["none", "esd_x", "esd_u", "uce", "sld", "negative_prompt", "darkminer", "steerdiff",
                         "advunlearn"]
    attacks: list[str] = ["no_attack", "unlearndiffatk", "p4d_n", "p4d_k", "ring_a_bell", "cce", "mma_diffusion",
                          "sneakyprompt"]
    threads: PositiveInt = 2  # torch threads in every grid stage (erase, defended, attack, evaluate)
    # extra training seeds for every method that trains with one (`seeded`): each re-erased and scored without
    # attacks (stage `seeds`); the report gives mean ± sd over these and the method's own erase.<m>.seed
    train_seeds: list[NonNegInt] = []

    _methods = field_validator("methods")(_names("erasure method", METHODS))
    _attacks = field_validator("attacks")(_names("attack", ATTACKS))




class GenerateParams(Section):
    threads: PositiveInt = 2
    scheduler: Literal["ddim", "dpm", "euler", "pndm"] = "ddim"
    steps: PositiveInt = 20
    guidance: Annotated[float, Field(ge=1)] = 4.0
    batch_size: PositiveInt = 64


class ReportParams(Section):
    # the profile these params came from (`eraselab params --profile` fills it in): named in the report and
    # in metrics/summary.json, so a table always says which grid it measured
    profile: str = "default"
    grid_columns: PositiveInt = 15
    grid_rows: PositiveInt = 5
    # Images that show any of these concepts are blurred in every grid: on the real path the concept's
    # detector decides (NudeNet blurs its boxes), in the toy world the judge. Empty in the toy default:
    # nothing there is unsafe. Checked against the world's and real_concepts' names.
    censor_concepts: list[str] = []
    blur_radius: PositiveFloat = 3.0


class DetectorChoice(Section):
    """The detector that decides whether an image shows a concept, with its params (checked here, at parse
    time, without loading any model). Its spec goes into every metrics file."""

    name: str = "judge"
    params: dict = {}

    @model_validator(mode="after")
    def _valid(self):
        from eraselab.evaluation.detectors import DETECTORS, validate_detector_params

        if self.name not in DETECTORS:
            raise ValueError(f"unknown detector {self.name!r}; valid choices: {', '.join(DETECTORS)}")
        try:
            validate_detector_params(self.name, self.params)
        except ValidationError as err:
            raise ValueError("; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None
        return self


TOY_CLIP = ClipScoreSpec(model="toy", pretrained="models/clip")


class EvaluationParams(Section):
    """How every metric is defined; each metrics file carries these declarations beside its numbers."""

    # concept -> detector. Toy concepts not listed use the judge; every real concept must name one.
    detectors: dict[str, DetectorChoice] = {}
    # CLIP score = scale * max(cos, 0); the toy CLIP trained in-pipeline, or open_clip ViT-L-14 / openai (sd14)
    clip_score: ClipScoreSpec = TOY_CLIP
    # FID/KID of each method's retain images against `fid_reference`'s (the undefended model: what erasure
    # costs on benign prompts). Toy: the tiny CLIP's 64-d image features (FID needs > 64 images per set,
    # else reported as null; KID is defined for any size); sd14: clean-fid's Inception.
    fid: FidSpec = FidSpec(feature_extractor="clip_image", clip=TOY_CLIP, fid_min_images="skip", kid_subset_size=1000)
    fid_reference: str = "none"


class Params(Section):
    world: WorldParams = WorldParams()
    base_model: BaseModelParams = BaseModelParams()
    judge: JudgeParams = JudgeParams()
    clip: ClipParams = ClipParams()
    model: ModelParams = ModelParams()
    prompts: PromptsParams = PromptsParams()
    generate: GenerateParams = GenerateParams()
    grid: GridParams = GridParams()
    erase: dict[str, dict] = {name: {} for name in METHODS}  # per method; each method validates its own keys
    attack: dict[str, dict] = {name: {} for name in ATTACKS}  # per attack, likewise
    # Real-path concepts (sd14): name -> {preset: nudity | church | ..., overrides} or a full spec
    # (eraselab.prompts.real_prompts.RealConceptParams). Empty in the toy world.
    real_concepts: dict[str, dict] = {}
    evaluation: EvaluationParams = EvaluationParams()
    report: ReportParams = ReportParams()

    @model_validator(mode="after")
    def _real_concepts(self):
        from eraselab.prompts.real_prompts import resolve_real_concept

        world = {c for names in SYNONYMS.values() for c in names}
        for name, entry in self.real_concepts.items():
            if name in world:
                raise ValueError(f"real_concepts.{name}: the toy world already has a concept of that name")
            resolve_real_concept(name, entry, key=f"real_concepts.{name}")
            if name in self.grid.concepts and name not in self.evaluation.detectors:
                from eraselab.evaluation.detectors import DETECTORS

                raise ValueError(f"evaluation.detectors.{name}: missing; a real concept needs a detector "
                                 f"(valid choices: {', '.join(d for d in DETECTORS if d != 'judge')})")
        return self

    @model_validator(mode="after")
    def _grid_is_consistent(self):
        world = [c for names in (self.world.shapes, self.world.colours, self.world.textures) for c in names]
        known = world + list(self.real_concepts)
        for concept in self.grid.concepts:
            if concept not in known:
                raise ValueError(f"grid.concepts: {concept!r} is not in the world (world.shapes/colours/textures) "
                                 f"nor in real_concepts; valid choices: {', '.join(known)}")
        if self.evaluation.fid_reference not in self.grid.methods:
            raise ValueError(f"evaluation.fid_reference: {self.evaluation.fid_reference!r} is not in grid.methods; "
                             f"valid choices: {', '.join(self.grid.methods)}")
        for concept in self.report.censor_concepts:
            if concept not in known:
                raise ValueError(f"report.censor_concepts: unknown concept {concept!r}; valid choices: {', '.join(known)}")
        for section, table in (("erase", METHODS), ("attack", ATTACKS)):  # a missing entry: the defaults
            entries = getattr(self, section)
            for name in entries:
                if name not in table:
                    raise ValueError(f"{section}.{name}: unknown; valid choices: {', '.join(table)}")
        return self

    @model_validator(mode="after")
    def _latent_fits(self):
        vae = 2 ** (len(self.base_model.vae.block_channels) - 1)
        unet = 2 ** (len(self.base_model.unet.block_channels) - 1)
        if self.world.image_size % (vae * unet):
            raise ValueError(f"world.image_size {self.world.image_size} is not divisible by {vae * unet}: the VAE "
                             f"downsamples by {vae} (base_model.vae.block_channels) and the UNet by {unet} "
                             f"(base_model.unet.block_channels)")
        return self


def real_concept(params: Params, name: str):
    """The real concept ``name`` as `RealConceptParams`, or None for a toy-world concept."""
    if name not in params.real_concepts:
        return None
    from eraselab.prompts.real_prompts import resolve_real_concept

    return resolve_real_concept(name, params.real_concepts[name], key=f"real_concepts.{name}")


def detector_choice(params: Params, concept: str) -> DetectorChoice:
    return params.evaluation.detectors.get(concept, DetectorChoice())


def _problem(e: dict, source: str, prefix: tuple = (), model=None) -> str:
    """One pydantic error as one line: ``<file> line <n>: <key>: <bad value>: <what is wrong>``."""
    loc = (*prefix, *e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        fields = getattr(model, "model_fields", {})
        if model is Params:  # a typo below a section: the valid keys of the section it sits in
            for p in e["loc"][:-1]:
                annotation = fields[p].annotation if isinstance(p, str) and p in fields else None
                fields = getattr(annotation, "model_fields", {})
        return f"{where(source, loc)}: {'.'.join(map(str, loc))}: unknown key; valid keys here: {', '.join(fields)}"
    if not e["loc"]:  # a cross-section check: its message starts with the key it is about
        head = msg.split(":", 1)[0].split(" ", 1)[0]
        line_of = tuple(head.split(".")) if head and "." in head or head in Params.model_fields else ()
        return f"{where(source, line_of)}: {msg}"
    # pydantic's own checks do not repeat the value; ours (value_error) name it themselves
    value = "" if e["type"] in ("missing", "value_error") or isinstance(e.get("input"), dict) else f"{shown(e.get('input'))}: "
    return f"{where(source, loc)}: {'.'.join(map(str, loc))}: {value}{msg}"


def _format(err: ValidationError, source: str) -> str:
    return "\n".join(_problem(e, source, model=Params) for e in err.errors())


def parse_params(data: dict, source: str = "params") -> Params:
    try:
        return Params.model_validate(data or {})
    except ValidationError as err:
        raise ParamsError(_format(err, source)) from None


def _component_params(section: str, name: str, given: dict, source: str):
    """A method's or attack's own params, validated; errors name the key and the valid keys."""
    from eraselab import registry

    Params_ = (registry.method if section == "erase" else registry.attack)(name).Params
    try:
        return Params_.model_validate(given)
    except ValidationError as err:
        raise ParamsError("\n".join(_problem(e, source, (section, name), Params_) for e in err.errors())) from None


def check_components(params: Params, source: str = "params.yaml") -> None:
    """Validate each grid method's and attack's own params (imports their modules, so not at parse time)."""
    for section, names in (("erase", params.grid.methods), ("attack", params.grid.attacks)):
        for name in names:
            _component_params(section, name, getattr(params, section).get(name, {}), source)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 (byte {err.object[err.start]:#04x}); accepted: UTF-8, with or without "
                          f"a BOM") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"{path} line {mark.line + 1}" if mark else str(path)
        raise ParamsError(f"{at}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    if data is not None and not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return parse_params(data, str(path))


HEADER = """\
# eraselab params: the single source of truth for both dvc.yaml and the Snakefile.
# Written by `eraselab params --profile {profile} --out params.yaml`; edit freely. Profiles (override files): profiles/*.yaml.
# Every key is validated before any compute (`eraselab check`); unknown keys name the valid ones.
"""


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


PROFILES = Path("profiles")


def load_profile(path: str | Path) -> Params:
    """A profile file holds only overrides of the defaults; the result is validated like params.yaml."""
    path = Path(path)
    if not path.exists() and path.parent == Path(".") and not path.suffix:
        path = PROFILES / f"{path}.yaml"  # a bare name: profiles/<name>.yaml, as the params header writes it
    if not path.exists():
        choices = sorted(p.stem for p in PROFILES.glob("*.yaml")) if PROFILES.exists() else []
        raise ParamsError(f"{path}: profile not found; available: {', '.join(choices) or 'none'} "
                          f"(a name in {PROFILES}/ or a path to a file of overrides)")
    data = yaml.safe_load(path.read_text()) or {}
    data = _merge({"report": {"profile": path.stem}}, data)  # a profile names itself unless it says otherwise
    return parse_params(_merge(Params().model_dump(mode="json"), data), str(path))


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=all(not isinstance(x, (dict, list)) for x in v)))


def with_component_defaults(data: dict, source: str = "params") -> dict:
    """Fill every registered method's and attack's params with its defaults, so the written params file
    lists each knob (and `dvc exp show` a column per knob). Imports the components' modules."""
    from eraselab import registry

    out = dict(data)
    for section, table in (("erase", registry.METHODS), ("attack", registry.ATTACKS)):
        given = data.get(section) or {}
        unknown = sorted(set(given) - set(table))
        if unknown:
            raise ParamsError(f"{where(source, (section, unknown[0]))}: {section}.{unknown[0]}: unknown "
                              f"{'method' if section == 'erase' else 'attack'}; valid choices: {', '.join(table)}")
        out[section] = {name: _component_params(section, name, given.get(name) or {}, source).model_dump(mode="json")
                        for name in table}
    return out


def dump_params(params: Params | None = None, profile: str = "default") -> str:
    params = params or Params()
    data = with_component_defaults(params.model_dump(mode="json"), f"profile {profile}")
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=110)
    return HEADER.format(profile=profile) + body
