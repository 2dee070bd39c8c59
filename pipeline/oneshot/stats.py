"""How many of the found galaxies carry a label, against the catalogue's base rate.

ULISSE's measure: the fraction of AGN among a prototype's neighbours against the fraction among
all galaxies (the random baseline, about 12% for BPT AGN). Here for any label column and value:
the fraction with its Wilson 95% interval, the base rate, the enrichment (their ratio) and the
one-sided hypergeometric p-value of finding at least that many by drawing the same number of
galaxies at random without replacement. Galaxies without a value in the column (empty or masked)
count in neither.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from pipeline.errors import InputError


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (Wilson 1927); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # exactly 0 with no success and 1 with no failure (the formula's, up to rounding)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def hypergeometric_tail(k: int, population: int, successes: int, draws: int) -> float:
    """P(X >= k) for X the number of successes among ``draws`` taken at random without replacement
    from ``population`` items of which ``successes`` are successes (scipy's ``hypergeom.sf(k - 1,
    population, successes, draws)``; written out so that a search need not import scipy.stats).
    Terms are summed in logarithms from k upwards until they no longer count."""
    low = max(int(k), 0, draws - (population - successes))
    high = min(successes, draws)
    if low > high:
        return 0.0
    log_total = _log_comb(population, draws)
    terms, largest = [], -math.inf
    for i in range(low, high + 1):
        term = _log_comb(successes, i) + _log_comb(population - successes, draws - i) - log_total
        if term < largest - 50:  # past the mode: the rest add less than 1e-21 of the sum
            break
        largest = max(largest, term)
        terms.append(term)
    return min(1.0, math.exp(largest) * math.fsum(math.exp(t - largest) for t in terms))


def hypergeometric_pmf(population: int, successes: int, draws: int) -> np.ndarray:
    """P(X = k) for k = 0..draws (see :func:`hypergeometric_tail`): what chance gives when
    ``draws`` items are taken at random without replacement."""
    log_total = _log_comb(population, draws)
    out = np.zeros(draws + 1)
    for k in range(max(0, draws - (population - successes)), min(successes, draws) + 1):
        out[k] = math.exp(_log_comb(successes, k) + _log_comb(population - successes, draws - k) - log_total)
    return out


def chance_fractions(hit, n: int, draws: int, seed: int = 0) -> np.ndarray:
    """The fraction of ``hit`` (a boolean mask over the labelled galaxies) among ``n`` galaxies
    drawn at random without replacement, in each of ``draws`` draws: the histogram of what chance
    gives, whose exact form is :func:`hypergeometric_pmf`. (draws,) float."""
    hit = np.asarray(hit, bool)
    if not 1 <= n <= len(hit):
        raise InputError(f"Cannot draw {n} of {len(hit)} labelled galaxies.")
    if not 1 <= draws <= 100_000:
        raise InputError(f"draws must be between 1 and 100000; got {draws}.")
    rng = np.random.default_rng(seed)
    return np.array([hit[rng.choice(len(hit), n, replace=False)].mean() for _ in range(draws)])


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


EMPTY = {"", "nan", "none", "--"}  # text that means "no value"


def labelled(column) -> np.ndarray:
    """Boolean mask of the rows of ``column`` that hold a value (not masked, not empty or NaN)."""
    values = np.ma.asarray(column)
    empty = np.array([str(v).strip().lower() in EMPTY for v in values.data], bool)
    return ~np.ma.getmaskarray(values) & ~empty


def is_positive(column, positive) -> np.ndarray:
    """Rows of ``column`` equal to ``positive`` (compared as text, so 1 matches "1")."""
    return np.array([str(v) == str(positive) for v in np.ma.asarray(column).data], bool)


def check_label(catalog, column: str, positive) -> tuple[np.ndarray, np.ndarray]:
    """Refuse a label ``column`` the catalogue lacks or a ``positive`` value no galaxy has (before
    any search). Returns the masks (labelled rows, rows with ``column == positive``)."""
    if column not in catalog.colnames:
        raise InputError(f"The catalogue has no column {column!r}; label columns here: "
                         f"{', '.join(c for c in catalog.colnames if c not in ('id', 'file')) or 'none'}.")
    has = labelled(catalog[column])
    hit = is_positive(catalog[column], positive) & has
    if not hit.any():
        values = sorted({str(v) for v in np.asarray(catalog[column])[has]})[:10]
        raise InputError(f"No galaxy has {column} = {positive!r}; its values are {', '.join(values) or 'none'}.")
    return has, hit


def label_statistics(catalog, found_rows, column: str, positive, confidence: float = 0.95) -> dict:
    """Statistics of ``column == positive`` among ``found_rows`` of ``catalog`` (astropy Table)
    against the whole catalogue. Keys: ``column, positive, n, k, fraction, low, high`` (the
    Wilson interval), ``base_rate, base_n, base_k, enrichment, p_value, unlabelled``
    (found rows without a value). Fractions are None when nothing labelled was found."""
    has, hit = check_label(catalog, column, positive)
    rows = np.unique(np.asarray(found_rows, int))
    n, k = int(has[rows].sum()), int(hit[rows].sum())
    big_n, big_k = int(has.sum()), int(hit.sum())
    base = big_k / big_n
    fraction = k / n if n else None
    low, high = wilson_interval(k, n, confidence)
    return {"column": column, "positive": str(positive), "n": n, "k": k, "fraction": fraction,
            "low": low, "high": high, "confidence": confidence, "base_rate": base, "base_n": big_n,
            "base_k": big_k, "enrichment": fraction / base if fraction is not None else None,
            "p_value": hypergeometric_tail(k, big_n, big_k, n) if n else None,
            "unlabelled": int(len(rows) - n)}


def format_statistics(s: dict) -> str:
    """One line for the CLI and the UI."""
    if s["fraction"] is None:
        return f"{s['column']} = {s['positive']}: no labelled galaxy among the results"
    return (f"{s['column']} = {s['positive']}: {s['k']}/{s['n']} = {100 * s['fraction']:.1f}% "
            f"[{100 * s['low']:.1f}, {100 * s['high']:.1f}] ({100 * s['confidence']:.0f}% Wilson); "
            f"base rate {100 * s['base_rate']:.1f}% ({s['base_k']}/{s['base_n']}); enrichment "
            f"x{s['enrichment']:.2f}; p = {s['p_value']:.2g} (hypergeometric, at least {s['k']})")
