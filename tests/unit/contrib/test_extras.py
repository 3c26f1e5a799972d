"""Each framework integration sits behind its own extra and imports only its own framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[3]
FRAMEWORKS = {"flask": "flask", "django": "django", "celery": "celery"}


def _extras() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["optional-dependencies"]


@pytest.mark.parametrize("extra", sorted(FRAMEWORKS))
def test_each_extra_pulls_only_its_own_framework(extra):
    requirements = " ".join(_extras()[extra]).lower()
    assert FRAMEWORKS[extra] in requirements
    for other in set(FRAMEWORKS) - {extra}:
        assert other not in requirements, f"[{extra}] would install {other}"


def test_all_includes_every_framework_extra():
    (everything,) = _extras()["all"]
    for extra in FRAMEWORKS:
        assert extra in everything


@pytest.mark.parametrize(
    "module, framework",
    [
        ("dictamesh_connectors.contrib.flask", "flask"),
        ("dictamesh_connectors.contrib.django", "django"),
        ("dictamesh_connectors.contrib.celery", "celery"),
        ("dictamesh_connectors.connectors", None),
        ("dictamesh_connectors.contrib", None),
    ],
)
def test_importing_an_integration_imports_no_other_framework(module, framework):
    # What the framework itself imports (Celery looks for Django) is not ours.
    baseline = {
        "flask": "import flask\n",
        "django": "import django\n",
        "celery": "from celery import Task, signals\n",
    }.get(framework or "", "")
    code = (
        f"import sys\n{baseline}before = set(sys.modules)\nimport {module}\n"
        "print(' '.join(m for m in ('flask', 'django', 'celery') "
        "if m in sys.modules and m not in before))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.split() == []
