"""Dependencies that are true (issue 14, item 6): pyproject.toml's bounds hold for what the suite runs against.

pyproject.toml's lower bounds are the versions this suite runs against (its comment says so). Checked:
- every requirement (dependencies and the test extra) whose marker applies here is installed, at a
  version its bounds allow; so a floor raised past the installed version, or a venv left behind a
  raised floor, fails here rather than in a user's install;
- no floor admits a version older than the code needs (`CODE_NEEDS`: the API that needs it), so a floor
  lowered again below what the code calls fails too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# package -> (the oldest version the code runs on, what needs it)
CODE_NEEDS = {
    "transformers": ("4.56", "from_pretrained(dtype=...) in w2s_core.training.models and choice"),
    "torch": ("2.3", 'torch.amp.GradScaler("cpu") in w2s_core.training.precision'),
}


def requirements(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate()


@pytest.mark.parametrize("req", [r for r in requirements() if applies(r)], ids=str)
def test_the_installed_version_meets_every_bound(req):
    try:
        installed = version(req.name)
    except PackageNotFoundError:
        pytest.fail(f"{req.name} is required by pyproject.toml but not installed: run scripts/install.sh")
    assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} does not meet {req}"


@pytest.mark.parametrize("name", sorted(CODE_NEEDS))
def test_no_floor_admits_a_version_the_code_cannot_run_on(name):
    need, why = CODE_NEEDS[name]
    (req,) = [r for r in requirements(()) if r.name == name]
    older = Version(need).release
    just_below = ".".join(map(str, (*older[:-1], older[-1] - 1))) if older[-1] else f"{older[0] - 1}.99"
    assert not req.specifier.contains(just_below), f"{req} admits {name} {just_below}, but the code needs {need}: {why}"


def test_every_dependency_has_a_floor():
    for req in requirements(()):
        assert any(s.operator in (">=", "==", "~=") for s in req.specifier), f"{req}: no lower bound"
