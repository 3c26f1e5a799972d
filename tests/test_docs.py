"""Every ```python block in docs/*.md and README.md runs, in order, one namespace per file.

Blocks fenced as ```py (or any other language) are shown but not run. A file
that names a test-service variable (DICTAMESH_TEST_POSTGRES_DSN, ...) gets it
set from the matching fixture, and is an integration test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)
SERVICE_FIXTURES = {
    "DICTAMESH_TEST_POSTGRES_DSN": "postgres_dsn",
    "DICTAMESH_TEST_KAFKA_BOOTSTRAP": "kafka_bootstrap",
    "DICTAMESH_TEST_MONGODB_URI": "mongodb_uri",
    "DICTAMESH_TEST_REDIS_URL": "redis_url",
}


def _params():
    for path in DOCS:
        if not path.exists():
            continue
        text = path.read_text()
        blocks = BLOCK.findall(text)
        if not blocks:
            continue
        needs = [var for var in SERVICE_FIXTURES if var in text]
        marks = [pytest.mark.integration] if needs else []
        yield pytest.param(path, blocks, needs, id=path.name, marks=marks)


@pytest.mark.parametrize("path,blocks,needs", list(_params()))
def test_doc_examples_run(path, blocks, needs, request, monkeypatch, tmp_path):
    for var in needs:
        monkeypatch.setenv(var, request.getfixturevalue(SERVICE_FIXTURES[var]))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{path.name}[block {number}]", "exec")
        exec(code, namespace)  # running our own documentation


def test_docs_exist():
    assert any(BLOCK.search(p.read_text()) for p in DOCS if p.exists())
    assert os.path.isdir(ROOT / "docs")


def test_readme_is_true():
    """README: every guide linked, every make target real, the service URLs the tests use."""
    from tests import conftest

    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{doc.name})" in readme, f"README does not link docs/{doc.name}"
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if "://" not in link:
            assert (ROOT / link).exists(), link
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    for target in set(re.findall(r"`make ([a-z][a-z-]*)", readme)) | {"demo", "test"}:
        assert target in targets, f"README names `make {target}`, the Makefile has no such target"
    for url in (conftest.POSTGRES_DSN, conftest.KAFKA_BOOTSTRAP, conftest.MONGODB_URI):
        assert f"`{url}`" in readme, url
    for service in (conftest.POSTGRES, conftest.KAFKA, conftest.MONGODB):
        assert service.env_var in readme
        script = (ROOT / "scripts" / "services" / f"{service.name}.sh").read_text()
        assert f"={service.port}" in script, (service.name, service.port)
    for path in ("scripts/services.sh", "examples/demo.py", ".ci/run", "docker-compose.test.yml"):
        assert (ROOT / path).exists(), path
    assert readme.index("make demo") < readme.index("## Using it")


def test_docker_compose_runs_every_test_service_on_its_port():
    """docker-compose.test.yml has each service the tests use, on the native port."""
    import yaml

    from tests import conftest

    compose = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())["services"]
    services = (
        conftest.POSTGRES,
        conftest.KAFKA,
        conftest.MONGODB,
        conftest.FERRETDB,
        conftest.REDIS,
    )
    for service in services:
        assert service.name in compose, f"docker-compose.test.yml lacks {service.name}"
        ports = compose[service.name]["ports"]
        assert f"127.0.0.1:{service.port}:" in " ".join(ports), (service.name, ports)


def test_every_page_is_in_the_site_navigation():
    """mkdocs.yml's nav lists every docs/ page (``make docs`` builds them strictly)."""
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        relative = page.relative_to(ROOT / "docs").as_posix()
        assert f": {relative}" in nav, f"mkdocs.yml does not list docs/{relative}"


def test_testing_guide_keeps_its_sections():
    """docs/testing.md keeps its four sections (one was once lost with the suite green)."""
    text = (ROOT / "docs" / "testing.md").read_text()
    headings = set(re.findall(r"^## (.+?)\s*$", text, re.M))
    for section in ("Fakes", "Conformance suite", "Fault-injection proxy", "Fault campaign"):
        assert section in headings, f"docs/testing.md lost its '## {section}' section"
    assert "ConnectorConformance" in text


def test_the_api_reference_covers_every_connector_and_integration():
    """Each connector's error table, and the named connectors and framework integrations,
    are in the generated reference (GraphQL's and SOAP's tables were once left out)."""
    reference = ROOT / "docs" / "reference"
    errors = (reference / "errors.md").read_text()
    for table in sorted((ROOT / "dictamesh_connectors").glob("*/errors.py")):
        module = f"dictamesh_connectors.{table.parent.name}.errors"
        assert f"::: {module}\n" in errors, f"docs/reference/errors.md lacks {module}"
    everything = "".join(page.read_text() for page in reference.glob("*.md"))
    modules = [
        "dictamesh_connectors.connectors",
        "dictamesh_connectors.contrib.flask",
        "dictamesh_connectors.contrib.django",
        "dictamesh_connectors.contrib.celery",
        "dictamesh_connectors.soap.SOAPClient",
    ]
    for module in modules:
        assert f"::: {module}\n" in everything, f"the API reference lacks {module}"


def test_the_configuration_reference_documents_every_field():
    """reference/config.md renders each config class's docstring, so it cannot drift only
    if every field is in that docstring, and every config class is on the page."""
    import importlib
    import pkgutil

    import attrs

    import dictamesh_connectors
    from dictamesh_connectors.config import BaseConfig

    page = (ROOT / "docs" / "reference" / "config.md").read_text()
    shown = re.findall(r"^::: (dictamesh_connectors\.[\w.]+)$", page, re.M)
    for package in pkgutil.iter_modules(dictamesh_connectors.__path__):
        if package.ispkg and (ROOT / "dictamesh_connectors" / package.name / "config.py").exists():
            module = importlib.import_module(f"dictamesh_connectors.{package.name}.config")
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseConfig)
                    and value.__module__ == module.__name__
                ):
                    public = f"dictamesh_connectors.{package.name}.{value.__name__}"
                    assert public in shown, f"docs/reference/config.md lacks {public}"
    for dotted in shown:
        module_name, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        documented = "".join(klass.__doc__ or "" for klass in cls.__mro__)
        for field in attrs.fields(cls):
            if not field.name.startswith("_"):
                pattern = rf"^\s+{re.escape(field.name)}( \(.*\))?:"
                assert re.search(pattern, documented, re.M), f"{dotted}.{field.name} undocumented"
