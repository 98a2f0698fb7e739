"""The documentation's API reference covers every public name, checked without building the site.

``make docs`` fails the same way (``docs/_ext/api_coverage.py``); this test reuses that extension's logic so
the suite catches an undocumented or unreachable public name without Sphinx installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import airflow_provider_cftunnel

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
api_coverage = importlib.import_module("api_coverage")


@pytest.fixture(scope="module")
def api():
    return api_coverage.public_api()


def test_every_public_module_has_a_page():
    walked = {
        info.name
        for info in pkgutil.walk_packages(airflow_provider_cftunnel.__path__, prefix="airflow_provider_cftunnel.")
        if not any(part.startswith("_") for part in info.name.split("."))
    }
    assert walked  # the walk found the package's modules
    assert set(api_coverage.public_modules()) == walked | {"airflow_provider_cftunnel"}


def test_every_exported_name_is_documented_where_autodoc_finds_it(api):
    pages = {module: api_coverage.module_page(module, api) for module in api_coverage.public_modules()}
    listed = {(entry.module, entry.name) for entry in api}
    for module_name in pages:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            assert (module_name, name) in listed, f"{module_name}.{name} is in __all__ but not in the reference"
    for entry in api:
        assert entry.home in pages, f"{entry.target}: its home module has no page"
        directive = f".. auto{entry.kind}:: {entry.target}"
        assert directive in pages[entry.home], f"{entry.module}.{entry.name}: no `{directive}` on its page"
        # autodoc imports the home module and reads the name there: it must be the exported object itself
        exported = getattr(importlib.import_module(entry.module), entry.name)
        assert getattr(importlib.import_module(entry.home), entry.name) is exported, entry


def test_every_public_class_and_function_has_a_docstring(api):
    assert [entry.target for entry in api_coverage.undocumented_names(api)] == []


def test_reexports_are_linked_not_documented_twice(api):
    documented = [entry.target for entry in api if entry.module == entry.home]
    assert len(documented) == len(set(documented))
    reexports = [entry for entry in api if entry.module != entry.home]
    assert "airflow_provider_cftunnel.testing.server.CloudflareSimulator" in {entry.target for entry in reexports}
    for entry in reexports:
        page = api_coverage.module_page(entry.module, api)
        assert f":py:obj:`~{entry.target}`" in page
        assert f".. auto{entry.kind}:: {entry.target}" not in page


def test_the_check_reports_a_name_the_reference_lacks(api):
    everything = {entry.target for entry in api}
    assert api_coverage.missing_names(api, everything) == []
    dropped = next(entry for entry in api if entry.kind == "class")
    assert api_coverage.missing_names(api, everything - {dropped.target}) == [
        entry for entry in api if entry.target == dropped.target
    ]


def test_write_pages_adds_new_modules_and_removes_stale_ones(tmp_path):
    (tmp_path / "airflow_provider_cftunnel.gone.rst").write_text("stale")
    written = api_coverage.write_pages(tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == {path.name for path in written}
    assert {path.stem for path in written} == set(api_coverage.public_modules())
    page = (tmp_path / "airflow_provider_cftunnel.exceptions.rst").read_text()
    assert page.startswith("``airflow_provider_cftunnel.exceptions``\n")
    assert ".. automodule:: airflow_provider_cftunnel.exceptions" in page


def test_every_guide_is_in_a_toctree():
    # Sphinx -W fails on a page no toctree lists: conf.py lists every page the index does not name at its marker
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    index = (DOCS / "index.md").read_text()
    assert conf.MARKER in index
    listed = index.replace(conf.MARKER, "".join(f"{page}\n" for page in conf.unlisted_pages(index)))
    names = {line.strip() for line in listed.splitlines()}
    assert {path.stem for path in DOCS.glob("*.md")} - {"index"} <= names
    assert "reference/api" in names
    assert "modules/*" in (DOCS / "reference" / "api.md").read_text()
    without_sensors = "\n".join(line for line in index.splitlines() if line != "sensors")
    assert "sensors" in conf.unlisted_pages(without_sensors)


def test_public_constants_are_found_with_their_doc_comment():
    # the AST reading behind autodata: a `#:` comment above an assignment documents it
    lines = api_coverage._top_level("airflow_provider_cftunnel")
    line, documented = lines["__version__"]
    source = inspect.getsource(airflow_provider_cftunnel).splitlines()
    assert source[line - 1].startswith("__version__ =")
    assert documented is source[line - 2].lstrip().startswith("#:")
