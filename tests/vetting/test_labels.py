"""Verdicts on galaxies: per set and question, a label column for statistics, feedback examples."""

import numpy as np
import pytest
from astropy.table import Table

from pipeline.errors import InputError
from pipeline.oneshot.stats import label_statistics
from pipeline.vetting.labels import feedback, label_collection, with_verdict_column


def test_verdicts_become_a_label_column_and_feedback(store):
    collection = label_collection("survey", "  AGN   candidate ")
    assert collection == "galaxies:survey:AGN candidate"
    assert label_collection("survey", "ring") != collection and label_collection("other", "AGN candidate") != collection
    store.cast(collection, "G1", "ann", "yes")
    store.cast(collection, "G2", "ann", "no")
    store.cast(collection, "G3", "ann", "yes")
    store.cast(collection, "G3", "bob", "no")  # disputed
    store.cast(collection, "G4", "bob", "unsure")
    catalog = Table({"id": ["G0", "G1", "G2", "G3", "G4"], "kind": ["a", "b", "a", "b", "a"]})
    labelled = with_verdict_column(catalog, store.latest(collection), "AGN candidate")
    assert list(labelled["vetted_AGN_candidate"]) == ["", "yes", "no", "disputed", "unsure"]
    assert catalog.colnames == ["id", "kind"]  # the set's own table is left as it was
    s = label_statistics(labelled, [1, 2], "vetted_AGN_candidate", "yes")
    assert (s["k"], s["n"], s["base_k"], s["base_n"]) == (1, 2, 1, 4)  # unvetted galaxies are not counted
    assert feedback(store.latest(collection)) == (["G1"], ["G2"])
    with pytest.raises(InputError, match="Say what the galaxies are vetted for"):
        label_collection("survey", " ")
    assert np.asarray(with_verdict_column(catalog[:0], {}, "x")["vetted_x"]).shape == (0,)
