"""The notebooks in examples/ run from top to bottom in a fresh kernel, so they never rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_are_the_three_tours():
    assert {n.name for n in NOTEBOOKS} == {"alma_pipeline_tour.ipynb", "oneshot_tour.ipynb",
                                           "viewers_in_jupyter.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()  # run where a reader opens it
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs) + "".join(str(o.get("data", {})) for o in outputs)
    expected = {"alma_pipeline_tour": "F1", "oneshot_tour": "bpt_class = AGN",
                "viewers_in_jupyter": "application/vnd.holoviews_load"}[path.stem]
    assert expected in text, text[:2000]
