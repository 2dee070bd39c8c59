"""Label statistics against the base rate."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from scipy import stats as sps

from pipeline.errors import InputError
from pipeline.oneshot.stats import (
    chance_fractions,
    format_statistics,
    hypergeometric_pmf,
    hypergeometric_tail,
    label_statistics,
    wilson_interval,
)


def test_wilson_interval_known_values():
    # Wilson's interval for 5/10 at 95%: 0.2366 - 0.7634 (textbook value)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and 0 < wilson_interval(0, 20)[1] < 0.2
    assert wilson_interval(0, 0) == (0.0, 1.0)


def catalogue():
    labels = ["AGN"] * 12 + ["star-forming"] * 60 + ["unclassified"] * 28
    return Table({"id": [f"g{i}" for i in range(100)], "bpt_class": labels,
                  "xray": MaskedColumn(["AGN"] * 3 + ["non-AGN"] * 97, mask=[False] * 10 + [True] * 90)})


def test_fraction_base_rate_enrichment_and_p_value():
    cat = catalogue()
    found = list(range(6)) + list(range(50, 54))  # 6 AGN of 10
    s = label_statistics(cat, found, "bpt_class", "AGN")
    assert (s["n"], s["k"], s["base_n"], s["base_k"]) == (10, 6, 100, 12)
    assert s["fraction"] == 0.6 and s["base_rate"] == 0.12 and s["enrichment"] == pytest.approx(5.0)
    assert s["low"] < 0.6 < s["high"]
    # P(X >= 6) for 10 drawn without replacement from 100 with 12 AGN
    assert s["p_value"] == pytest.approx(sum(sps.hypergeom.pmf(k, 100, 12, 10) for k in range(6, 11)))
    assert "6/10 = 60.0%" in format_statistics(s) and "base rate 12.0%" in format_statistics(s)
    # a random-looking draw is not significant
    assert label_statistics(cat, [0] + list(range(20, 29)), "bpt_class", "AGN")["p_value"] > 0.3


def test_unlabelled_rows_count_in_neither():
    cat = catalogue()
    s = label_statistics(cat, [0, 1, 5, 50, 60], "xray", "AGN")
    assert (s["n"], s["k"], s["unlabelled"], s["base_n"], s["base_k"]) == (3, 2, 2, 10, 3)


def test_clear_messages():
    cat = catalogue()
    with pytest.raises(InputError, match="no column 'morph'"):
        label_statistics(cat, [0], "morph", "E")
    with pytest.raises(InputError, match="values are AGN, star-forming, unclassified"):
        label_statistics(cat, [0], "bpt_class", "Seyfert")
    assert label_statistics(cat, np.array([], int), "bpt_class", "AGN")["fraction"] is None


@pytest.mark.parametrize("k, population, successes, draws", [
    (6, 100, 12, 10), (0, 100, 12, 10), (1, 100, 12, 10), (11, 100, 12, 10), (12, 100, 12, 50),
    (3, 20, 19, 5),  # at least 4 of the 5 drawn are successes whatever is drawn
    (900, 1_000_000, 120_000, 5_000), (40, 320, 160, 50), (1, 1, 1, 1), (1, 10, 0, 3)])
def test_hypergeometric_tail_is_scipys(k, population, successes, draws):
    expected = sps.hypergeom.sf(k - 1, population, successes, draws)
    assert hypergeometric_tail(k, population, successes, draws) == pytest.approx(expected, rel=1e-7, abs=1e-300)


def test_chance_draws_follow_the_exact_distribution():
    """The statistics lesson's histogram of random draws against scipy's hypergeometric pmf."""
    hit = np.zeros(800, bool)
    hit[::8] = True  # 100 of 800
    exact = hypergeometric_pmf(800, 100, 12)
    np.testing.assert_allclose(exact, sps.hypergeom.pmf(np.arange(13), 800, 100, 12), atol=1e-12)
    assert exact.sum() == pytest.approx(1.0)
    fractions = chance_fractions(hit, 12, 20_000, seed=1)
    counts = np.bincount(np.rint(fractions * 12).astype(int), minlength=13) / len(fractions)
    np.testing.assert_allclose(counts, exact, atol=0.01)
    assert np.array_equal(fractions, chance_fractions(hit, 12, 20_000, seed=1))  # seeded: the same draws
    assert hypergeometric_pmf(10, 9, 5)[:4].sum() == 0  # at least 4 of 5 must be hits when 9 of 10 are
    with pytest.raises(InputError, match="Cannot draw 900"):
        chance_fractions(hit, 900, 10)
    with pytest.raises(InputError, match="draws"):
        chance_fractions(hit, 12, 0)
