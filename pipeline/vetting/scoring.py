"""Verdicts against the truth, on a simulated cube: which candidates are real, how the reviewers'
verdicts agree with that, and the detector's precision before and after vetting."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from pipeline.alma.matching import classify
from pipeline.vetting.store import summarise

VERDICT_ORDER = ("real", "spurious", "unsure", "disputed", "")


def against_truth(candidates: Table, verdicts: dict[str, dict], truth: Table, cube_name: str,
                  image_size_px: int) -> dict:
    """Score the team's verdicts (``verdicts``: {source: {reviewer: {...}}}) on ``candidates`` (a
    catalogue with a ``source`` column) against ``truth`` (the strict matching rule of
    :func:`pipeline.alma.matching.classify`).

    Returns ``true`` (per candidate: matches a true source), ``verdict`` (per candidate, as
    :func:`~pipeline.vetting.store.summarise` gives it), ``table`` {verdict: (true, false)},
    ``precision_before`` (true / candidates), ``precision_after`` (the same once the candidates
    judged spurious are dropped), ``rejected_true`` (real sources judged spurious), ``missed``
    (true sources no candidate matches), and ``correct`` / ``judged`` (real-or-spurious verdicts
    that agree with the truth, of all such)."""
    n = len(candidates)
    outcome = classify(truth, candidates, cube_name, image_size_px) if n else {"rows": [], "missed": list(truth)}
    true = np.array([r == "true positive" for r in outcome["rows"]], bool)
    verdict = np.array([summarise(verdicts.get(str(s), {}))["verdict"] for s in candidates["source"]] if n else [],
                       dtype=object)
    table = {v: (int((true & (verdict == v)).sum()), int((~true & (verdict == v)).sum())) for v in VERDICT_ORDER}
    kept = verdict != "spurious"
    judged = (verdict == "real") | (verdict == "spurious")
    correct = ((verdict == "real") & true) | ((verdict == "spurious") & ~true)
    return {"true": true, "verdict": verdict, "table": table,
            "precision_before": float(true.mean()) if n else float("nan"),
            "precision_after": float(true[kept].mean()) if kept.any() else float("nan"),
            "kept": int(kept.sum()), "rejected_true": int((true & (verdict == "spurious")).sum()),
            "missed": len(outcome["missed"]), "correct": int(correct.sum()), "judged": int(judged.sum())}


def format_against_truth(score: dict) -> str:
    """:func:`against_truth` as a few lines of text."""
    n = len(score["true"])
    names = {"": "no verdict"}
    lines = [f"{n} candidates, {int(score['true'].sum())} true, {n - int(score['true'].sum())} false; "
             f"{score['missed']} true sources not among them.",
             f"Precision before vetting {score['precision_before']:.2f}; after dropping the spurious "
             f"{score['precision_after']:.2f} ({score['kept']} kept; true sources judged spurious: "
             f"{score['rejected_true']}).",
             f"Verdicts that agree with the truth: {score['correct']} of {score['judged']} real or spurious.",
             "verdict       true  false"]
    for verdict, (t, f) in score["table"].items():
        if t or f:
            lines.append(f"{names.get(verdict, verdict):<12}{t:>6}{f:>7}")
    return "\n".join(lines)
