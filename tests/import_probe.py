"""What importing a module costs, measured in a fresh interpreter (this test process has loaded everything)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def modules_added(imports: str, *, setup: str = "") -> list[str]:
    """
    The modules a fresh interpreter loads for ``imports``, after ``setup`` has run (sorted).

    :param imports: Python statements, e.g. ``"import airflow_provider_cftunnel.exceptions"``.
    :param setup: Statements run first, whose modules do not count (what the importing process already has).
    """
    code = "\n".join(
        [
            "import json, sys",
            textwrap.dedent(setup),
            "before = set(sys.modules)",
            textwrap.dedent(imports),
            "print(json.dumps(sorted(set(sys.modules) - before)))",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def outside_stdlib(modules: list[str], *, own: str = "airflow_provider_cftunnel") -> list[str]:
    """
    The modules that belong neither to the standard library nor to ``own``.

    :param modules: Module names.
    :param own: A package prefix that is allowed.
    """
    return [m for m in modules if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith(own)]
