"""Where every artifact lives: the one place the graph, the stages and the report take paths from."""

from __future__ import annotations

WORLD = "data/world"
BASE_MODEL = "models/base"
BASE_PLOTS = "plots/base_model"
BASE_TRAIN_METRICS = "metrics/base_model_train.json"
JUDGE = "models/judge"
JUDGE_METRICS = "metrics/judge.json"
CLIP = "models/clip"
CLIP_METRICS = "metrics/clip.json"
HELDOUT_PROMPTS = "data/prompts/heldout.jsonl"
BASE_IMAGES = "data/generated/base"
BASE_METRICS = "metrics/base_model.json"
FINGERPRINTS = "workflow/fingerprints"
REPORTS = "reports"
METRICS = "metrics"
SUMMARY = "metrics/summary.json"  # the headline numbers, tracked in git (eraselab.report.summary)
PLOTS = "plots"
ABLATIONS = "ablations"
TIMINGS = "logs/stages"


def concept(c: str) -> str:
    """A concept's prompt sets and its concept.json (concept_prompts)."""
    return f"data/prompts/concepts/{c}"


def targets(c: str) -> str:
    """The undefended model's images of the concept's attack seeds: every attack's target (targets)."""
    return f"data/targets/{c}"


def search(c: str, attack: str) -> str:
    """A defence-blind attack's adversarial prompts, found once per concept (search)."""
    return f"data/searches/{c}/{attack}"


def erased(method: str, c: str) -> str:
    return f"models/erased/{method}/{c}"


def erase_plot(method: str, c: str) -> str:
    return f"plots/erase/{method}/{c}.json"


def defended(method: str, c: str) -> str:
    """The defended model's images of the concept's prompt sets (defended)."""
    return f"data/generated/{method}/{c}"


def attacked(method: str, c: str, attack: str) -> str:
    """An attack's adversarial prompts against one defended model, and their images."""
    return f"data/attacks/{method}/{c}/{attack}"


def cell_metrics(method: str, c: str, attack: str) -> str:
    return f"metrics/cells/{method}/{c}/{attack}.json"


def seed_metrics(method: str, c: str, seed) -> str:
    """A trained method's attack-free metrics with another training seed (seeds)."""
    return f"metrics/seeds/{method}/{c}/seed{seed}.json"


def quality(method: str, c: str) -> str:
    return f"metrics/quality/{method}/{c}.json"


def fingerprint(unit: str) -> str:
    """A code unit's fingerprint: the files its import closure holds, with their hashes (eraselab.graph)."""
    return f"{FINGERPRINTS}/{unit}.txt"


def job_key(name: str) -> str:
    """A job's key under DVC: its code units' digests and its params values (eraselab.graph)."""
    return f"{FINGERPRINTS}/jobs/{name}.txt"
