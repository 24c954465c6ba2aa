"""95 % intervals of the grid's rates (evaluation.intervals) and where the summary carries them."""

from __future__ import annotations

import math

import pytest

from eraselab.evaluation import intervals as iv
from eraselab.report import summary as s


def _wilson_by_definition(k, n, z=iv.Z95):
    """The Wilson interval as the set of p with |k/n - p| <= z sqrt(p (1 - p) / n), its edges found by
    bisection between k/n (inside) and 0 or 1."""
    phat = k / n
    inside = lambda p: abs(phat - p) <= z * math.sqrt(p * (1 - p) / n)  # noqa: E731

    def edge(inner, outer):
        if inside(outer):
            return outer
        for _ in range(200):
            mid = (inner + outer) / 2
            inner, outer = (mid, outer) if inside(mid) else (inner, mid)
        return inner

    return edge(phat, 0.0), edge(phat, 1.0)


@pytest.mark.parametrize("k,n", [(0, 30), (1, 30), (15, 30), (29, 30), (30, 30), (7, 60), (45, 90)])
def test_wilson_matches_its_definition(k, n):
    lo, hi = iv.wilson(k, n)
    ref_lo, ref_hi = _wilson_by_definition(k, n)
    assert lo == pytest.approx(ref_lo, abs=1e-9) and hi == pytest.approx(ref_hi, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert hi - lo > 0  # never degenerate, even at 0 or n successes


def test_intervals_narrow_with_more_images_and_are_undefined_without_any():
    wide, narrow = iv.wilson(15, 30), iv.wilson(150, 300)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert iv.wilson(0, 0) is None and iv.rate_interval(0.5, 0) is None and iv.rate_interval(None, 30) is None


def test_a_mean_over_equal_sized_concepts_is_the_pooled_proportion():
    pooled = iv.rate_interval((3 + 9) / 60, 60)
    assert iv.mean_interval([3 / 30, 9 / 30], [30, 30]) == pooled
    # unequal sizes: the effective n lies between the smallest and the sum
    assert 30 < iv.effective_n([30, 60]) < 90
    assert iv.mean_interval([None, 0.5], [30, None]) is None


def test_separation_needs_both_intervals_apart():
    assert iv.separated([0.1, 0.2], [0.3, 0.4]) and iv.separated([0.3, 0.4], [0.1, 0.2])
    assert not iv.separated([0.1, 0.35], [0.3, 0.4])
    assert not iv.separated(None, [0.3, 0.4])
    assert iv.fmt_interval(0.41, [0.32, 0.51]) == "0.41 (0.32–0.51)" and iv.fmt_interval(0.41, None) == "0.41"
    assert iv.fmt_interval(None, None) == "–"


N = {"target_train": 60, "target_heldout": 60, "retain": 60, "attack_seeds": 30}


def cell(asr, pre, target=0.1, retention=0.9):
    return {"asr": asr, "pre_asr": pre, "target_rate": target, "heldout_rate": target, "retention": retention,
            "clip": 50.0, "n": N}


# b's worst case is lower than c's but within noise; a is far above both
GRID = {"a": {"red": {"no_attack": cell(0.9, 0.9, 0.9), "p4d_n": cell(1.0, 0.9, 0.9)},
              "star": {"no_attack": cell(0.9, 0.9, 0.9), "p4d_n": cell(0.9, 0.9, 0.9)}},
        "b": {"red": {"no_attack": cell(0.1, 0.1), "p4d_n": cell(0.3, 0.1)},
              "star": {"no_attack": cell(0.0, 0.0), "p4d_n": cell(0.2, 0.0)}},
        "c": {"red": {"no_attack": cell(0.1, 0.1), "p4d_n": cell(0.4, 0.1)},
              "star": {"no_attack": cell(0.1, 0.1), "p4d_n": cell(0.2, 0.1)}}}
QUALITY = {m: {c: {"fid": None, "kid": 0.0} for c in ("red", "star")} for m in GRID}


def test_the_summary_carries_an_interval_for_every_rate():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    b = out["methods"]["b"]
    assert b["ci"]["target_rate"] == iv.rate_interval(0.1, 120)  # two concepts of 60 images
    assert b["ci"]["retention"] == iv.rate_interval(0.9, 120)
    assert b["ci"]["asr"]["p4d_n"] == iv.rate_interval(0.25, 60)  # two concepts of 30 attack seeds
    assert b["ci"]["worst_asr"] == iv.rate_interval(0.25, 60)  # red: p4d_n 0.3, star: p4d_n 0.2
    cell_ci = out["grid"]["b"]["red"]["p4d_n"]["ci"]
    assert cell_ci["asr"] == iv.rate_interval(0.3, 30) and cell_ci["target_rate"] == iv.rate_interval(0.1, 60)
    assert out["grid"]["b"]["red"]["p4d_n"]["n"] == N


def test_the_headline_calls_only_differences_the_intervals_separate():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    text = s.headline(out, reference="a")
    assert "**b**'s, 0.25 (" in text
    assert "**b**'s interval overlaps **c**'s" in text and "do not rank" in text
    apart = {**GRID, "c": {c: {a: cell(0.9, 0.9) for a in ("no_attack", "p4d_n")} for c in ("red", "star")}}
    text = s.headline(s.build_summary(apart, QUALITY, ["no_attack", "p4d_n"], "default"), reference="a")
    assert "**b**'s interval separates it from every other defence" in text


def test_compare_marks_the_methods_within_noise_of_the_best():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    table = s.compare_table(out)
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert " * " in rows["b"] + " " and " = " in rows["c"] + " " and "=" not in rows["a"] and "*" not in rows["a"]
    assert "0.25 (" in rows["b"]
    header, md_rows = s.method_table(out)
    assert md_rows[1][header.index("worst ASR")].startswith("0.25 (")


def test_a_summary_without_intervals_still_prints():
    """Older commits' and experiments' summaries carry no ``ci``: `eraselab compare` shows their values bare."""
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    for row in out["methods"].values():
        del row["ci"]
    assert "0.25 (" not in s.compare_table(out) and "0.25" in s.compare_table(out)
    assert "carries no intervals" in s.headline(out, reference="a")
