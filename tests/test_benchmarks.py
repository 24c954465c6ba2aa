"""Checks that the benchmarks measure what they claim, on a tiny random pipeline (fast, no trained model).

- sampler: our sampler and the stock pipeline give bit-identical images (same latents; same seeds);
- steps: each plain-PyTorch loop computes the same losses as our code, and the cached/deduplicated
  variants do not change them;
- sd14_cost: its call model matches the UNet calls the code really makes (counted with a hook), and the
  FLOP counts behave (backward costs more than forward; more trained weights cost more);
- stages: records are grouped per kind (eraselab.report.cost, as the report's cost section) and the chart
  is written.

Run: pytest -q benchmarks/test_benchmarks.py (self-contained; also works moved into tests/).
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import eraselab
import eraselab._compat  # noqa: F401  (before torchvision users)

ROOT = Path(eraselab.__file__).resolve().parents[2]


def bench(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is no package); registered, as dataclasses need."""
    key = f"benchmarks_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "benchmarks" / f"{name}.py")
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


@pytest.fixture(scope="module")
def tiny_dir(tiny_pipeline_dir) -> Path:
    """The shared random tiny SD-layout pipeline (tests/conftest.py)."""
    return tiny_pipeline_dir


@pytest.fixture(scope="module")
def small():
    """Grid params at a tiny budget, and a toy concept."""
    from eraselab.params import parse_params

    params = parse_params({"erase": {
        "esd_x": {"batch_size": 2, "trajectory_steps": 3},
        "darkminer": {"pool_size": 4, "batch_size": 2, "lora_rank": 2, "lora_alpha": 2.0}}})
    return params, bench("steps").toy_concept(params, "red")


# --- sampler ---------------------------------------------------------------------------------------------
def test_sampler_bit_identical_to_stock_pipeline(tiny_dir):
    from eraselab.generate import SamplingConfig, generate_prompts
    from eraselab.models import load_pipeline

    sampler = bench("sampler")
    pipe = load_pipeline(tiny_dir, device="cpu")
    check = sampler.identity_check(pipe, steps=3, guidance=4.0, n=3)
    assert check["same_latents"]["equal"], check
    # the timed stock path seeds one CPU generator per image: the same noise as ours, so the same images
    prompts, seeds = sampler.PROMPTS[:3], [5, 6, 7]
    ours = generate_prompts(pipe, prompts, seeds, SamplingConfig(steps=3, guidance=4.0, batch_size=3), progress=False)
    theirs = sampler.stock(pipe, prompts, seeds, 3, 4.0, batch=3)
    assert ours.dtype == theirs.dtype == np.uint8 and np.array_equal(ours, theirs)


# --- steps: the plain loops compute our losses -------------------------------------------------------
def test_esd_plain_loop_matches_ours(tiny_dir, small, tmp_path):
    from eraselab.erasure.esd import EsdX
    from eraselab.models import load_pipeline

    params, concept = small
    steps = bench("steps")
    p = EsdX.Params.model_validate({**params.erase["esd_x"], "steps": 3})
    ours = [r["loss"] for r in EsdX().erase(load_pipeline(tiny_dir, device="cpu"), concept, p, tmp_path)["loss"]]
    plain = steps.esd_plain(tiny_dir, params, concept, 3)
    assert len(plain.times) == 3
    assert plain.losses == pytest.approx(ours, rel=1e-5)
    assert steps.esd_plain(tiny_dir, params, concept, 3, cache_text=True).losses == pytest.approx(ours, rel=1e-4)


def test_darkminer_plain_loops_match_ours(tiny_dir, small):
    from eraselab.erasure.darkminer import circumvent, mine

    params, concept = small
    steps = bench("steps")
    pipe, p, pool, _, ids = steps.darkminer_setup(tiny_dir, params, concept)
    _, mined_losses = mine(pipe, pool, ids, p.model_copy(update={"mine_steps": 3}), torch.Generator().manual_seed(0))
    assert steps.mine_plain(tiny_dir, params, concept, 3).losses == pytest.approx(mined_losses, rel=1e-5)
    for empty_anchor in (False, True):
        pipe, p, pool, contexts, _ = steps.darkminer_setup(tiny_dir, params, concept)
        mined, regularisers = steps.circumvent_inputs(contexts, p, empty_anchor)
        ours = circumvent(pipe, pool, mined, regularisers, p.model_copy(update={"circumvent_steps": 3}),
                          torch.Generator().manual_seed(0), random.Random(0))
        plain = steps.circumvent_plain(tiny_dir, params, concept, 3, anchor_is_empty=empty_anchor)
        assert plain.losses == pytest.approx(ours, rel=1e-5)
        deduped = steps.circumvent_plain(tiny_dir, params, concept, 3, dedupe=True, anchor_is_empty=empty_anchor)
        assert deduped.losses == pytest.approx(ours, rel=1e-4)


def test_distinct_contexts_maps_duplicates():
    steps = bench("steps")
    a, b = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    unique, index = steps.distinct([a, b, a.clone(), -b])
    assert len(unique) == 3 and index == [0, 1, 0, 2]


# --- sd14_cost: the call model is the code's ----------------------------------------------------------
class UnetCalls:
    """UNet samples evaluated, with and without autograd recording."""

    def __init__(self, *unets):
        self.forward = self.grad = 0
        for unet in unets:
            unet.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        if torch.is_grad_enabled():
            self.grad += len(sample)
        else:
            self.forward += len(sample)


def split(calls) -> tuple[float, float]:
    return calls.get("unet", 0), sum(v for k, v in calls.items() if k.startswith("unet_grad"))


def test_attack_call_model_matches_unlearndiffatk(tiny_dir, small):
    from eraselab.attacks.base import Checker
    from eraselab.attacks.unlearndiffatk import UnlearnDiffAtk, UnlearnDiffAtkParams
    from eraselab.erasure.base import Defended
    from eraselab.generate import SamplingConfig
    from eraselab.models import load_pipeline

    _, concept = small
    cost = bench("sd14_cost")
    defended, undefended = load_pipeline(tiny_dir, device="cpu"), load_pipeline(tiny_dir, device="cpu")
    counter = UnetCalls(defended.unet, undefended.unet)
    p = UnlearnDiffAtkParams(tokens=2, timesteps=2, steps_per_timestep=3)
    seeds = [{"prompt": concept.erase_prompts[i], "seed": i} for i in range(2)]
    checker = Checker(present=lambda images: np.zeros(len(images), bool), image_features=lambda x: torch.zeros(len(x), 1))
    UnlearnDiffAtk().run(Defended(defended, "none", SamplingConfig(steps=2, scheduler="ddim")), undefended, concept,
                         seeds, p, checker)
    size = cost.ConceptSizes(0, 0, 0, attack_seeds=2, erase_prompts=0, anchor_prompts=0, retain_fit=0)
    parts = cost.attack_calls("unlearndiffatk", p, "none", "red", size, cost.sampler_calls("ddim", 2))
    run_parts = sum((calls for _, calls in parts[:-1]), cost.Counter())  # the last part is cmd_attack's generation
    assert split(run_parts) == (counter.forward, counter.grad)


def test_erase_call_model_matches_darkminer(tiny_dir, small, tmp_path):
    from eraselab.erasure.base import EraseContext
    from eraselab.erasure.darkminer import DarkMiner, DarkMinerParams
    from eraselab.models import load_pipeline

    _, concept = small
    cost = bench("sd14_cost")
    pipe = load_pipeline(tiny_dir, device="cpu")
    counter = UnetCalls(pipe.unet)
    p = DarkMinerParams(rounds=2, patience=2, pool_size=2, batch_size=2, mine_steps=2, verify_samples=1,
                        threshold=-1.0, circumvent_steps=2, sample_steps=2, lora_rank=2, lora_alpha=2.0)
    features = lambda images: torch.from_numpy(images.reshape(len(images), -1)[:, :32]).float()  # noqa: E731
    log = DarkMiner().erase(pipe, concept, p, tmp_path, EraseContext(image_features=features))
    assert log["circumvented"] == 2  # every round passed: the call model's upper bound is what ran
    assert split(cost.erase_calls("darkminer", p, None)) == (counter.forward, counter.grad)


def test_flop_counts_behave():
    cost = bench("sd14_cost")
    flops = cost.count_call_flops()
    assert set(flops) == set(cost.CALLS)
    assert 700e9 < flops["unet"] < 900e9  # SD v1.4's UNet at 64 x 64: ~0.8 TFLOP per sample
    assert flops["unet"] < flops["unet_grad_cond"] < flops["unet_grad_cond_weights"]
    assert flops["unet_grad_esd_x"] < flops["unet_grad_esd_u"]
    assert flops["text"] < flops["text_grad"] < flops["text_grad_weights"]
    assert cost.sampler_calls("pndm", 50) == 51 and cost.sampler_calls("ddim", 20) == 20


# --- stages --------------------------------------------------------------------------------------------
def test_stages_groups_kinds_and_plots(tmp_path):
    from eraselab.report import cost

    stages = bench("stages")
    assert stages.collect is cost.collect  # one implementation: the report's cost section uses it too
    records = {"world": ("world", 4.0, 500.0), "erase.esd_x.red": ("erase", 60.0, 900.0),
               "erase.esd_x.star": ("erase", 80.0, 950.0), "erase.uce.red": ("erase", 2.0, 700.0),
               "attack.esd_x.red.cce": ("attack", 30.0, 5000.0), "report": ("report", 9.0, 600.0)}
    for out, (stage, wall, rss) in records.items():
        path = tmp_path / "stages" / f"{out}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stage": stage, "wall_s": wall, "peak_rss_mb": rss}))
    kinds = stages.collect(tmp_path / "stages")
    assert list(kinds) == ["world", "erase esd_x", "erase uce", "attack cce", "report"]  # the DAG's order
    assert kinds["erase esd_x"] == {"count": 2, "total_s": 140.0, "max_s": 80.0, "max_rss_mb": 950.0}
    assert kinds["attack cce"]["max_rss_mb"] > stages.PEAK_RSS_TARGET_MB
    stages.plot(kinds, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


# --- noop ----------------------------------------------------------------------------------------------
def test_noop_measures_nothing_where_the_engines_would_run_jobs(tmp_path, monkeypatch, capsys):
    """A fresh checkout has every job pending: the no-op benchmark must say so and start no stage."""
    from conftest import scratch_repo

    noop = bench("noop")
    repo = scratch_repo(tmp_path / "repo")
    monkeypatch.setattr(noop, "ROOT", repo)
    pending = noop.snakemake_pending_jobs()
    assert pending > 10  # the whole smoke graph, report included
    assert not noop.dvc_is_current()
    monkeypatch.setattr(sys, "argv", ["noop.py", "--repeats", "1"])
    noop.main()
    table = capsys.readouterr().out
    assert "| `dvc repro` | not measured: `dvc status` lists changed stages" in table
    assert f"not measured: snakemake would run {pending} jobs here" in table
    assert not (repo / "data" / "world").exists()  # nothing ran


def test_guidance_probe_measures_slds_own_term():
    """benchmarks/guidance.py's probe: the mask hit rate is diffusers' rule, the removed term is what SLD
    subtracts from the CFG direction (checked on the first step, before any momentum), and the probe
    never changes the guidance it wraps."""
    from eraselab.erasure.sld import SafetyGuidance, presets

    guidance = bench("guidance")
    settings = {**presets()["max"], "sld_warmup_steps": 0}
    g = torch.Generator().manual_seed(0)
    eps_u, eps_c, eps_s = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    plain = SafetyGuidance(eps_s[:1], settings).combine(eps_u, eps_c, [eps_s], 4.0, 0.5, {})
    probe = guidance.Probe(SafetyGuidance(eps_s[:1], settings), settings)
    out = probe.combine(eps_u, eps_c, [eps_s], 4.0, 0.5, {})
    assert torch.equal(out, plain)
    (row,) = probe.rows
    diff = eps_c - eps_s
    assert row["hit"] == pytest.approx((diff < settings["sld_threshold"]).float().mean().item())
    mask = torch.where(diff >= settings["sld_threshold"], 0.0, (diff.abs() * settings["sld_guidance_scale"]).clamp(max=1.0))
    term = ((eps_s - eps_u) * mask).flatten(1)
    cfg = (eps_c - eps_u).flatten(1)
    assert row["rel"] == pytest.approx((term.norm(dim=1) / cfg.norm(dim=1)).mean().item(), rel=1e-4)
    assert row["cos"] == pytest.approx(torch.nn.functional.cosine_similarity(cfg, (eps_s - eps_u).flatten(1)).mean().item(), rel=1e-5)
    # before the warm-up ends nothing is recorded and nothing removed
    late = {**settings, "sld_warmup_steps": 40}
    probe = guidance.Probe(SafetyGuidance(eps_s[:1], late), late)
    assert torch.allclose(probe.combine(eps_u, eps_c, [eps_s], 4.0, 0.1, {}), eps_u + 4.0 * (eps_c - eps_u))
    assert probe.rows == []
    assert "| red | 4 | sld_max |" in guidance.markdown([{
        "concept": "red", "guidance": 4.0, "defence": "sld_max", "target_rate": 0.5, "heldout_rate": 0.25, "n": 40,
        "prompt_following": 0.9, "relative_target_rate": 0.6, "relative_heldout_rate": 0.3, **row}])


def test_guidance_probe_measures_the_push_along_the_concept():
    """With the references, the probe adds two conditionings the wrapped rule never sees, and measures the
    guided prediction's coefficient on the concept words' direction: plain CFG along a prompt that *is* the
    concept gives the scale; a negative prompt of the concept's words gives 1 (it cancels all but the
    conditional's own share)."""
    from eraselab.generate import CFG

    guidance = bench("guidance")
    g = torch.Generator().manual_seed(1)
    eps_0, eps_k = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    refs = (torch.zeros(1, 3, 5), torch.ones(1, 3, 5))
    probe = guidance.Probe(CFG, None, refs)
    assert probe.extra_contexts() == list(refs)
    out = probe.combine(eps_0, eps_k, [eps_0, eps_k], 4.0, 0.5, {})
    assert torch.allclose(out, eps_0 + 4.0 * (eps_k - eps_0))
    assert probe.along[0]["along"] == pytest.approx(4.0, rel=1e-5)
    assert probe.along[0]["cond_along"] == pytest.approx(1.0, rel=1e-5)
    negative = guidance.Probe(CFG, None, refs)  # eps_u is the negative prompt's prediction = the concept's
    negative.combine(eps_k, eps_k, [eps_0, eps_k], 7.5, 0.5, {})
    assert negative.along[0]["along"] == pytest.approx(1.0, rel=1e-5)
