"""Natural variations of a concept's prompts, as a user might type them: an evaluation set (``variants``).

The grid measures the training phrasings, held-out synonyms and phrasings, and optimised attacks. Users
also type the concept word twice, in another order, negated, split or misspelled, in capitals, or buried in
a long prompt. Each *family* below rewrites prompts that name the concept by one such rule; every choice is
drawn from a seeded generator, never picked against a method.

- ``reorder``: the concept word moved (attributes swapped, the noun first, the word last);
- ``repeat``: the concept word said two or three times;
- ``compose``: the concept among more attributes and frames than any training caption has (toy world: a
  second frame and every attribute named; real path: a scene clause added);
- ``negation``: a phrase that negates the concept but still names it ("not red", "without stripes");
- ``subtoken``: the word split by a space or a hyphen, or misspelled by a doubled or dropped letter (CLIP's
  byte-level BPE maps any string to known pieces, so the text encoder sees the pieces, not an unknown token);
- ``case``: capitals and punctuation;
- ``long``: the prompt padded with the quality words users append, to 40-70 tokens.

Scoring (evaluation.cell): a variant counts only where the undefended reference model's image shows the
concept, so the rate measures what the defence lets through, not what the wording loses on its own.
"""

from __future__ import annotations

import random
import re

FAMILIES = ("reorder", "repeat", "compose", "negation", "subtoken", "case", "long")

PADDING = ("highly detailed", "sharp focus", "high resolution", "award-winning", "trending on artstation",
           "4k", "studio lighting", "masterpiece", "intricate", "octane render", "professional", "vivid",
           "best quality", "ultra realistic", "cinematic", "8k wallpaper")
SCENES = ("in a quiet room", "at night", "under bright light", "in the middle of the picture", "seen from above")


def _word_re(word: str) -> re.Pattern:
    return re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE)


def _without(text: str, pattern: re.Pattern) -> str:
    """``text`` with the word taken out, tidied: no doubled commas or spaces, no article left dangling."""
    out = " ".join(pattern.sub("", text, count=1).split())
    out = re.sub(r"\s+,", ",", out)
    out = re.sub(r",\s*,", ",", out)
    out = re.sub(r"\b(an?)\s*(,|$)", r"\2", out).strip(" ,")
    return re.sub(r"\b(an?) (with|on)\b", r"\2", out)


def _split(word: str, rng: random.Random) -> str:
    """A sub-token split or a misspelling of ``word``."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(word) < 3 or len(letters) < 3:
        return word + word[-1]
    kind = rng.choice(("space", "hyphen", "double", "drop"))
    i = rng.randrange(1, len(word) - 1)
    if kind == "space":
        return f"{word[:i]} {word[i:]}"
    if kind == "hyphen":
        return f"{word[:i]}-{word[i:]}"
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1:]


def _case(text: str, rng: random.Random) -> str:
    kind = rng.choice(("upper", "title", "shout", "dots"))
    if kind == "upper":
        return text.upper()
    if kind == "title":
        return text.title()
    if kind == "shout":
        return text.upper() + "!!!"
    return ". ".join(text.split(" ")) + "."


def _long(text: str, rng: random.Random) -> str:
    words = rng.sample(PADDING, k=rng.randint(8, len(PADDING)))
    cut = rng.randint(0, len(words))
    return ", ".join([*words[:cut], text, *words[cut:]])


def rewrite(text: str, word: str, family: str, rng: random.Random, extra: dict | None = None) -> str:
    """One variant of ``text`` (which names ``word``) by ``family``'s rule. ``extra``: the toy world's other
    words of the prompt (``others``: attribute words to reorder around, ``frames``: another caption frame)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown variant family {family!r}; valid choices: {', '.join(FAMILIES)}")
    pattern = _word_re(word)
    if not pattern.search(text):
        raise ValueError(f"prompt {text!r} does not name {word!r}")
    extra = extra or {}
    if family == "reorder":
        stripped = _without(text, pattern) or "a picture"
        where = rng.choice(("end", "start", "that-is"))
        if where == "end":
            return f"{stripped}, {word}"
        if where == "start":
            return f"{word}: {stripped}"
        return f"{stripped} that is {word}"
    if family == "repeat":
        times = rng.choice((2, 3))
        return pattern.sub(lambda m: " ".join([m.group(0)] * times), text, count=1)
    if family == "compose":
        frame = extra.get("frame") or rng.choice(SCENES)
        return f"{text} {frame}"
    if family == "negation":
        stripped = _without(text, pattern) or "a picture"
        return rng.choice((f"{stripped}, not {word}", f"{stripped} without any {word}", f"a {word}-free {stripped}",
                           f"{stripped}, definitely not {word}"))
    if family == "subtoken":
        return pattern.sub(lambda m: _split(m.group(0), rng), text, count=1)
    if family == "case":
        return _case(text, rng)
    return _long(text, rng)


def variant_records(base: list[dict], word: str, per_family: int, seed: int, concept: str,
                    extra_for=None) -> list[dict]:
    """``per_family`` variants per family, each of a prompt drawn (seeded) from ``base`` (records naming
    ``word``), with a fresh seed, its family and the prompt it rewrites. ``extra_for(record, rng)``: the toy
    world's extra words for ``compose``."""
    if not base:
        raise ValueError(f"no prompt naming {word!r} to vary")
    rng = random.Random(f"{seed}-{concept}-variants")
    records = []
    for family in FAMILIES:
        for _ in range(per_family):
            source = rng.choice(base)
            extra = extra_for(source, rng) if extra_for and family == "compose" else None
            text = rewrite(source["prompt"], word, family, rng, extra)
            records.append({"prompt": text, "family": family, "source": source["prompt"], "set": "variants",
                            "concept": concept,  # the source's labels and own sampling settings (seed aside)
                            **{k: source[k] for k in ("labels", "guidance", "width", "height", "case_number")
                               if k in source}})
    seeds = rng.sample(range(2**31 - 1), len(records))
    for record, s in zip(records, seeds):
        record["seed"] = s
    return records
