"""The statistics behind kmbench's verdicts (plots/stats.py), on answers known
without them: textbook Mann-Whitney data, p-values counted by enumerating
every split, bootstrap coverage on samples drawn with a known ratio, and the
correction and equivalence decisions on constructed cases.
Run by ctest (plots.stats) as: python3 -m pytest tests/plots/test_stats.py"""
import itertools
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plots"))
import stats  # noqa: E402


def u_statistic(a, b):
    """U of sample a: pairs where a's value beats b's, ties counting a half."""
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)


def enumerated_p(a, b):
    """Exact two-sided p by listing every way to split the pooled values into groups of len(a), len(b)."""
    pooled = list(a) + list(b)
    u = u_statistic(a, b)
    n = len(a)
    us = []
    for picks in itertools.combinations(range(len(pooled)), n):
        chosen = set(picks)
        us.append(u_statistic([pooled[i] for i in picks], [pooled[i] for i in range(len(pooled)) if i not in chosen]))
    lower = sum(1 for x in us if x <= u) / len(us)
    upper = sum(1 for x in us if x >= u) / len(us)
    return min(1.0, 2 * min(lower, upper))


def test_u_of_the_tortoise_and_hare_race():
    # Wikipedia's Mann-Whitney example: finishing order T H H H H H T T T T T H; U_T = 11, U_H = 25.
    order = "THHHHHTTTTTH"
    tortoise = [12 - i for i, c in enumerate(order) if c == "T"]  # a higher score finished earlier
    hare = [12 - i for i, c in enumerate(order) if c == "H"]
    assert u_statistic(tortoise, hare) == 11
    assert u_statistic(hare, tortoise) == 25
    assert stats.mann_whitney_p(tortoise, hare) == pytest.approx(enumerated_p(tortoise, hare), abs=1e-12)


@pytest.mark.parametrize("a,b", [
    ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]),
    ([1, 3, 5, 7, 9], [2, 4, 6, 8, 10]),
    ([10.2, 11.5, 9.8, 12.1, 10.9], [13.0, 12.4, 14.2, 11.9, 13.7]),
    ([5, 1, 4], [2, 8, 9, 7]),
])
def test_mann_whitney_p_matches_enumeration(a, b):
    assert stats.mann_whitney_p(a, b) == pytest.approx(enumerated_p(a, b), abs=1e-12)


def test_smallest_p_is_the_full_separation():
    assert stats.smallest_p(5, 5) == pytest.approx(2 / 252)
    assert stats.mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(stats.smallest_p(5, 5))
    assert stats.smallest_p(1, 1) == 1.0


def test_equal_samples_give_p_one():
    assert stats.mann_whitney_p([3, 3, 3], [3, 3]) == 1.0


@pytest.mark.parametrize("n,spread", [(5, 0.02), (5, 0.2), (10, 0.1)])
def test_bootstrap_interval_covers_the_true_ratio(n, spread):
    rng = np.random.default_rng(20261204 + n)
    trials, true_ratio, hits = 200, 1.2, 0
    for t in range(trials):
        a = np.exp(rng.normal(0, spread, n))  # median 1
        b = true_ratio * np.exp(rng.normal(0, spread, n))
        lo, hi = stats.bootstrap_ratio_ci(a, b, seed=t)
        hits += lo <= true_ratio <= hi
    assert hits / trials >= 0.90  # a 95% interval; measured 0.96-0.97 on these draws


def test_bh_adjust_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 0.02, 0.02, 0.04, 0.04 after the step-up minimum
    assert stats.bh_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert stats.bh_adjust([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert stats.bh_adjust([]) == []


def row(a, b, better="lower", metric="allocator_ns_per_op"):
    r = stats.compare_samples(a, b)
    r.update(metric=metric, better=better, group="g")
    return r


SLOW = [100, 101, 99, 100.5, 99.5]


def test_a_clear_regression_alone_is_worse():
    rows = stats.judge([row(SLOW, [x * 1.2 for x in SLOW])])
    assert rows[0]["verdict"] == "worse"
    assert rows[0]["p_adj"] == pytest.approx(2 / 252)


def test_the_same_row_among_many_nulls_is_not_significant():
    rows = [row(SLOW, [x * 1.2 for x in SLOW])] + [row(SLOW, SLOW) for _ in range(99)]
    stats.judge(rows)
    assert rows[0]["p_adj"] > 0.05
    assert rows[0]["verdict"] == "no significant difference"


def test_higher_is_better_flips_the_word():
    rows = stats.judge([row(SLOW, [x * 1.2 for x in SLOW], better="higher", metric="ops_per_sec")])
    assert rows[0]["verdict"] == "better"


def test_a_small_significant_shift_is_below_the_margin():
    rows = stats.judge([row(SLOW, [x * 1.025 for x in SLOW])])
    assert rows[0]["p_adj"] < 0.05
    assert rows[0]["verdict"] == "differs by < ±3%"


def test_a_tight_interval_inside_the_margin_is_the_same():
    b = [100.2, 99.8, 100.4, 99.9, 100.1]
    rows = stats.judge([row(SLOW, b)])
    assert rows[0]["verdict"] == "same within ±3%"
    assert stats.judge([row(SLOW, b)], margin=0.001)[0]["verdict"] == "no significant difference"


def test_missing_and_few_rows_keep_their_reason():
    rows = stats.judge([row([], [1, 2]), row([1], [1, 2])])
    assert rows[0]["verdict"].startswith("missing")
    assert rows[1]["verdict"] == "too few repetitions"
    assert "p_adj" not in rows[0]


def test_an_a_a_comparison_reads_no_difference():
    rng = np.random.default_rng(7)
    rows = []
    for g in range(300):  # 300 metrics of groups whose two runs come from one distribution (5% spread)
        centre = rng.uniform(10, 1000)
        rows.append(row(list(centre * np.exp(rng.normal(0, 0.05, 5))), list(centre * np.exp(rng.normal(0, 0.05, 5)))))
    stats.judge(rows)
    assert not [r for r in rows if r["verdict"] in ("better", "worse")]
    line = stats.verdict_line(rows, ["allocator_ns_per_op"])
    assert line.startswith("VERDICT B vs A: NO DIFFERENCE — ")
    assert "Benjamini-Hochberg over 300 comparisons" in line


def test_verdict_line_heads():
    worse = stats.judge([row(SLOW, [x * 1.2 for x in SLOW])])
    assert stats.verdict_line(worse, ["allocator_ns_per_op"]).startswith("VERDICT B vs A: REGRESSION — ")
    both = stats.judge([row(SLOW, [x * 1.2 for x in SLOW]), row(SLOW, [x * 0.8 for x in SLOW])])
    assert " MIXED — allocator_ns_per_op: 1 better, 1 worse" in stats.verdict_line(both, ["allocator_ns_per_op"])
    assert "nothing to compare" in stats.verdict_line([], ["allocator_ns_per_op"])
    # The floor named is that of the comparison with the fewest repetitions, whatever the rows' order.
    mixed = stats.judge([row([1, 2, 3], [1, 2, 3, 4, 5]), row([1, 2, 3, 4], [1, 2, 3])])
    assert "with 4 and 3 repetitions no p is below 0.0571" in stats.verdict_line(mixed, ["allocator_ns_per_op"])
    assert math.isclose(stats.DEFAULT_MARGIN, 0.03)
