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


#: Guides the index lists only once their page exists (the ``optional pages`` line of its toctree), so the
#: build passes before they are written.
OPTIONAL_PAGES = ("ui", "gate")


def _list_optional_pages(app: object, docname: str, source: list[str]) -> None:
    if docname == "index":
        present = [page for page in OPTIONAL_PAGES if (DOCS / f"{page}.md").exists()]
        source[0] = source[0].replace("<!-- optional pages -->\n", "".join(f"{page}\n" for page in present))


def setup(app: object) -> None:
    """List the optional guides that exist in the index's toctree; highlight ``jsonc`` blocks as JSON."""
    from pygments.lexers import JsonLexer  # tolerates // comments

    app.connect("source-read", _list_optional_pages)  # type: ignore[attr-defined]
    app.add_lexer("jsonc", JsonLexer)  # type: ignore[attr-defined]
