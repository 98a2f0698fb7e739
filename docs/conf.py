"""Sphinx configuration of the provider's documentation site (``make docs``).

The guides are Markdown (MyST); the API reference is autodoc, one page per public module, written by
``_ext/api_coverage.py``, which also fails the build when a public name is missing from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS.parent)]

from airflow_provider_cftunnel import __version__  # noqa: E402

project = "airflow-provider-cftunnel"
author = "airflow-provider-cftunnel developers"
copyright = "airflow-provider-cftunnel developers"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "api_coverage",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]


myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}
html_theme = "furo"
html_title = f"airflow-provider-cftunnel {release}"
html_static_path: list[str] = []


#: Guides other work adds (the UI's first hour, the deploy gate): the index lists them, in this order, once their
#: page exists. Any other top-level page no toctree names is listed after them, so a new page never breaks -W.
OPTIONAL_PAGES = ("ui", "gate")
#: The line of the index's toctree the unlisted guides replace.
MARKER = "<!-- optional pages -->\n"


def unlisted_pages(index_source: str) -> list[str]:
    """Return the top-level pages that exist but that the index's source does not name, optional ones first.

    :param index_source: The text of ``docs/index.md``.
    """
    named = {line.strip() for line in index_source.splitlines()}
    present = sorted(path.stem for path in DOCS.glob("*.md") if path.stem != "index")
    ordered = [page for page in OPTIONAL_PAGES if page in present] + [p for p in present if p not in OPTIONAL_PAGES]
    return [page for page in ordered if page not in named]


def _list_unlisted_pages(app: object, docname: str, source: list[str]) -> None:
    if docname == "index":
        source[0] = source[0].replace(MARKER, "".join(f"{page}\n" for page in unlisted_pages(source[0])))


def setup(app: object) -> None:
    """List the guides the index does not name in its toctree; highlight ``jsonc`` blocks as JSON."""
    from pygments.lexers import JsonLexer  # tolerates // comments

    app.connect("source-read", _list_unlisted_pages)  # type: ignore[attr-defined]
    # re-read the index and the API toctree on every build, so a page or module added since the last is listed
    app.connect("env-get-outdated", lambda app, env, added, changed, removed: ["index", "reference/api"])  # type: ignore[attr-defined]
    app.add_lexer("jsonc", JsonLexer)  # type: ignore[attr-defined]
