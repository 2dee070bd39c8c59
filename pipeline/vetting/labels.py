"""Verdicts on galaxies: the neighbours of a one-shot search vetted for a question ("AGN candidate:
yes / no / unsure"), in the same vetting store as cube candidates, one collection per galaxy set and
question. The team's verdicts become a label column (:func:`with_verdict_column`) that statistics
count and exports carry, and relevance feedback (:func:`feedback`); the set's own catalogue file is
never touched."""

from __future__ import annotations

import re

import numpy as np
from astropy.table import Table

from pipeline.vetting.store import LABEL_VERDICTS, one_line, summarise

PREFIX = "vetted_"  # the label column's name: PREFIX + the question as an identifier (TOPCAT's expressions use it)
QUESTION_CHARS = 80


def check_question(question: str) -> str:
    """The question galaxies are vetted for: see :func:`~pipeline.vetting.store.one_line` (at most
    QUESTION_CHARS characters)."""
    return one_line(question, QUESTION_CHARS, "vetting question",
                    "Say what the galaxies are vetted for (e.g. AGN candidate) before giving verdicts.")


def label_collection(set_name: str, question: str) -> str:
    """The store's collection of the verdicts on galaxies of the set ``set_name`` for ``question``."""
    return f"galaxies:{set_name}:{check_question(question)}"


def column_name(question: str) -> str:
    """``vetted_`` and the question with every run of other characters than letters, digits and _
    made one _: ``AGN candidate?`` -> ``vetted_AGN_candidate``."""
    return PREFIX + (re.sub(r"\W+", "_", check_question(question)).strip("_") or "question")


def team_verdicts(ids, verdicts: dict[str, dict]) -> np.ndarray:
    """Per galaxy id: what the team says (yes, no, unsure; disputed when reviewers differ; "" when
    no one has said)."""
    return np.array([summarise(verdicts.get(str(i), {}))["verdict"] for i in ids], dtype=str) if len(ids) else \
        np.zeros(0, "U1")


def with_verdict_column(table: Table, verdicts: dict[str, dict], question: str) -> Table:
    """A copy of ``table`` (with an ``id`` column; the data shared, not copied) with the team's
    verdicts as the column :func:`column_name`; "" where no one has said (a missing value for
    statistics: those galaxies are not counted)."""
    out = table.copy(copy_data=False)
    name = column_name(question)
    out[name] = team_verdicts(out["id"], verdicts)
    out[name].description = f"the team's verdict on '{check_question(question)}': " + ", ".join(LABEL_VERDICTS)
    return out


def feedback(verdicts: dict[str, dict]) -> tuple[list[str], list[str]]:
    """Galaxies the team says yes to and no to (disputed and unsure ones are neither): the good and
    bad examples of relevance feedback."""
    said = {gid: summarise(v)["verdict"] for gid, v in verdicts.items()}
    return sorted(g for g, v in said.items() if v == "yes"), sorted(g for g, v in said.items() if v == "no")
