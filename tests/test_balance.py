from collections import Counter

import pytest

from tunesmith.curation.balance import balance
from tunesmith.curation.records import make_example


def _data(counts: dict[str, int]):
    return [
        make_example(
            [{"role": "user", "content": f"{label} {i}"}, {"role": "assistant", "content": label}],
            f"{label}:{i}",
            label,
        )
        for label, n in counts.items()
        for i in range(n)
    ]


def test_none_reports_the_distribution_and_warns_past_ten_to_one():
    result = balance(_data({"urgent": 110, "billing": 10}), "none")
    assert result.before == result.after == {"billing": 10, "urgent": 110}
    assert result.imbalance_ratio == pytest.approx(11.0)
    assert len(result.warnings) == 1 and "11.0:1" in result.warnings[0] and "majority class" in result.warnings[0]
    assert balance(_data({"urgent": 100, "billing": 10}), "none").warnings == []  # exactly 10:1 is tolerated


def test_cap_cuts_large_classes_to_k_times_the_smallest():
    result = balance(_data({"urgent": 50, "billing": 10, "general": 25}), "cap", cap_ratio=2.0, seed=3)
    assert result.after == {"billing": 10, "general": 20, "urgent": 20}
    assert len(result.dropped) == 35 and Counter(e.label for e in result.dropped) == {"urgent": 30, "general": 5}
    assert {e.id for e in result.examples}.isdisjoint({e.id for e in result.dropped})


def test_oversample_tops_up_minorities_with_distinct_ids():
    result = balance(_data({"urgent": 30, "billing": 10}), "oversample", seed=1)
    assert result.after == {"billing": 30, "urgent": 30} and result.added == 20
    ids = [e.id for e in result.examples]
    assert len(set(ids)) == len(ids) == 60
    copies = [e for e in result.examples if "~" in e.id]
    assert len(copies) == 20 and all(c.label == "billing" and "oversampled copy" in c.source for c in copies)


def test_balancing_uses_the_category_for_generation_data():
    rows = [
        make_example(
            [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
            f"s{i}",
            category="math" if i < 12 else "poetry",
        )
        for i in range(15)
    ]
    result = balance(rows, "cap", cap_ratio=1.0)
    assert result.before == {"math": 12, "poetry": 3} and result.after == {"math": 3, "poetry": 3}
