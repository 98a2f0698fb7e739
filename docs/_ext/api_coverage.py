"""Write the API reference's module pages, and fail the build if a public name is missing from it.

Every public module of the package (no path component starting with ``_``) gets a page,
``reference/modules/<module>.rst``, written before Sphinx reads the sources: the module's docstring, then an
autodoc directive for each public name whose home it is. A module's public names are those in its ``__all__``,
or, without ``__all__``, the classes and functions it defines whose names do not start with ``_``. A name's
home is where it is defined (a class's or function's ``__module__``; for a constant, the module that assigns
it at top level): a re-export is listed with a link to its home, so nothing is documented twice.

After Sphinx has read every page, the check compares the public names with the objects the Python domain
holds, warns for every public name the reference lacks and for every public class or function without a
docstring, and fails the build, so new API cannot go undocumented. A public constant without a ``#:`` doc
comment is still documented (autodoc shows its value) and only listed in the build's output. A module added
to the package appears without editing anything here.

:func:`public_api` and :func:`module_page` need no Sphinx (``tests/test_docs_reference.py`` uses them).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

PACKAGE = "airflow_provider_cftunnel"
#: Where the module pages go, relative to the docs source directory (generated, not committed).
MODULES_DIR = Path("reference") / "modules"


@dataclass(frozen=True)
class PublicName:
    """One public name of one module, and where it is documented.

    :ivar module: The module that exports it.
    :ivar name: Its name there.
    :ivar home: The module that defines it, whose page documents it.
    :ivar kind: The autodoc directive that documents it: ``class``, ``exception``, ``function`` or ``data``.
    :ivar line: Its line in the home module (for the page's order).
    :ivar documented: Whether it has a docstring (a constant: a ``#:`` comment above it).
    """

    module: str
    name: str
    home: str
    kind: str
    line: int
    documented: bool

    @property
    def target(self) -> str:
        """The documented object's full name, as the Python domain records it."""
        return f"{self.home}.{self.name}"


def is_public(module_name: str) -> bool:
    """Tell whether a module is public: no component of its dotted name starts with ``_``.

    :param module_name: A dotted module name.
    """
    return not any(part.startswith("_") for part in module_name.split("."))


def public_modules(package: str = PACKAGE) -> list[str]:
    """Return the package and its public modules, sorted (importing each).

    :param package: The top-level package's name.
    """
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if is_public(info.name):
            names.append(info.name)
    return sorted(names)


@cache
def _top_level(module_name: str) -> dict[str, tuple[int, bool]]:
    """Map each name a module binds at top level (assignment, def, class) to its line and whether an assignment
    has a doc comment (``#:`` on the line above, or a string literal after it, as autodoc reads them)."""
    module = importlib.import_module(module_name)
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    body = ast.parse(source).body
    bound: dict[str, tuple[int, bool]] = {}
    for index, node in enumerate(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.setdefault(node.name, (node.lineno, True))
            continue
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        following = body[index + 1] if index + 1 < len(body) else None
        documented = (node.lineno > 1 and lines[node.lineno - 2].lstrip().startswith("#:")) or (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        )
        for target in targets:
            if isinstance(target, ast.Name):
                bound.setdefault(target.id, (node.lineno, documented))
    return bound


def _kind(value: Any) -> str:
    if inspect.isclass(value):
        return "exception" if issubclass(value, BaseException) else "class"
    if inspect.isroutine(value) or (callable(value) and inspect.isfunction(getattr(value, "__wrapped__", None))):
        return "function"
    return "data"


def _home(module_name: str, name: str, value: Any, modules: list[str]) -> str:
    """Return the public module that defines ``value`` (``module_name`` when none is found)."""
    defined_in = getattr(value, "__module__", None) if _kind(value) != "data" else None
    if isinstance(defined_in, str) and defined_in in modules and name in _top_level(defined_in):
        return defined_in
    if name in _top_level(module_name):
        return module_name
    for other in modules:
        if name in _top_level(other) and getattr(importlib.import_module(other), name, None) is value:
            return other
    return module_name


def public_api(package: str = PACKAGE) -> list[PublicName]:
    """Return every public name of every public module, with the module that documents it.

    :param package: The top-level package's name.
    """
    modules = public_modules(package)
    found: list[PublicName] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            exported = [
                name
                for name, value in vars(module).items()
                if not name.startswith("_")
                and _kind(value) != "data"
                and getattr(value, "__module__", None) == module_name
            ]
        for name in exported:
            value = getattr(module, name)
            home = _home(module_name, name, value, modules)
            kind = _kind(value)
            line, commented = _top_level(home).get(name, (0, False))
            documented = commented if kind == "data" else bool(inspect.getdoc(value))
            found.append(PublicName(module_name, name, home, kind, line, documented))
    return found


def module_page(module_name: str, api: list[PublicName]) -> str:
    """Return the reStructuredText page of one module: its docstring, its names, links to its re-exports.

    :param module_name: The module's dotted name.
    :param api: What :func:`public_api` returned.
    """
    title = f"``{module_name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module_name}", ""]
    homed = {entry.name: entry for entry in api if entry.home == module_name}
    for entry in sorted(homed.values(), key=lambda entry: (entry.line, entry.name)):
        lines.append(f".. auto{entry.kind}:: {entry.target}")
        if entry.kind in ("class", "exception"):
            lines += ["   :members:", "   :show-inheritance:", "   :member-order: bysource"]
        lines.append("")
    reexported = sorted(
        {entry.target for entry in api if entry.module == module_name and entry.home != module_name},
    )
    if reexported:
        lines += ["Also importable from here:", ""]
        lines += [
            f"* :py:obj:`~{target}` (documented in :py:mod:`{target.rsplit('.', 1)[0]}`)" for target in reexported
        ]
        lines.append("")
    return "\n".join(lines)


def write_pages(outdir: Path, package: str = PACKAGE) -> list[Path]:
    """Write one page per public module into ``outdir`` (only those that changed), and remove stale ones.

    :param outdir: The directory of the module pages.
    :param package: The top-level package's name.
    """
    api = public_api(package)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for module_name in public_modules(package):
        path = outdir / f"{module_name}.rst"
        text = module_page(module_name, api)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    for stale in set(outdir.glob("*.rst")) - set(written):
        stale.unlink()
    return written


def missing_names(api: list[PublicName], documented: set[str]) -> list[PublicName]:
    """Return the public names whose object is not among ``documented`` (the reference lacks them).

    :param api: What :func:`public_api` returned.
    :param documented: The full names of the objects the API reference documents.
    """
    return [entry for entry in api if entry.target not in documented]


def undocumented_names(api: list[PublicName], *, constants: bool = False) -> list[PublicName]:
    """Return the public classes and functions without a docstring (``constants``: the constants without one).

    :param api: What :func:`public_api` returned.
    :param constants: Return the constants without a ``#:`` doc comment instead of the classes and functions.
    """
    return [entry for entry in api if not entry.documented and (entry.kind == "data") == constants]


def _on_builder_inited(app: Sphinx) -> None:
    write_pages(Path(app.srcdir) / MODULES_DIR)


def _on_env_check_consistency(app: Sphinx, env: BuildEnvironment) -> None:
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    api = public_api()
    documented = set(env.get_domain("py").objects)  # type: ignore[attr-defined]
    failures = [
        (entry, "missing from the API reference (is it importable, and on the page docs/_ext/api_coverage.py writes?)")
        for entry in missing_names(api, documented)
    ] + [(entry, "undocumented: give it a docstring") for entry in undocumented_names(api)]
    for entry, why in failures:
        logger.warning("%s.%s is public but %s", entry.module, entry.name, why, type="api_coverage", subtype="missing")
    bare = sorted({entry.target for entry in undocumented_names(api, constants=True)})
    if bare:
        logger.info("api_coverage: public constants without a #: doc comment (shown by value): %s", ", ".join(bare))
    if failures:
        app.statuscode = 1  # fail even without -W


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the page writer and the coverage check with Sphinx.

    :param app: The Sphinx application.
    """
    app.connect("builder-inited", _on_builder_inited)
    app.connect("env-check-consistency", _on_env_check_consistency)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


__all__ = [
    "PublicName",
    "missing_names",
    "module_page",
    "public_api",
    "public_modules",
    "undocumented_names",
    "write_pages",
]
