"""Build the sdist and the wheel, check them, and prove the wheel works on its own.

``python scripts/wheel_smoke.py [--airflow-version 3.3.2] [--outdir DIR] [--keep]``

1. ``python -m build`` (the sdist, then the wheel built from it) and ``twine check --strict``;
2. the wheel's metadata: the version of ``airflow_provider_cftunnel.__version__``, the SPDX license with its
   ``LICENSE`` file inside, ``urllib3>=2``, the project URLs (Airflow's Providers page links "Documentation");
3. a fresh virtualenv in a temporary directory with ``apache-airflow==VERSION`` and the wheel (not editable, and
   installed and run from the temporary directory, so the source tree is never on ``sys.path``);
4. inside it (this file again, with ``--inner``): the package loads from the virtualenv, ``airflow providers
   list`` discovers it, the simulator's command line prints its scenario and serves until SIGTERM, and the
   example health-check DAG passes ``airflow dags test`` against the simulator.

One line per step; on a failure, the output of the failed command. ``.ci/run`` runs it after ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "airflow-provider-cftunnel"
EXAMPLE_DAG = "example_cftunnel_health_check"
URLS = ("Documentation", "Source", "Changelog", "Issues")


class SmokeError(Exception):
    """A step failed; the message says which and why."""


def step(name: str, started: float) -> None:
    print(f"  ok  {name} ({time.monotonic() - started:.1f} s)", flush=True)


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a command; return its output (stdout and stderr), or raise with the tail of it."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SmokeError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout[-4000:]}")
    return done.stdout


# ---- outside: build, check, install ------------------------------------------------------------------------


def package_version() -> str:
    text = (REPO / "airflow_provider_cftunnel" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if match is None:
        raise SmokeError("no __version__ in airflow_provider_cftunnel/__init__.py")
    return match[1]


def build(outdir: Path) -> tuple[Path, Path]:
    """Build the sdist and, from it, the wheel; return their paths."""
    shutil.rmtree(outdir, ignore_errors=True)
    run(sys.executable, "-m", "build", "--outdir", outdir, REPO, cwd=REPO)
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return sdist, wheel


def check_wheel_metadata(wheel: Path, version: str) -> None:
    """The wheel carries the version, the license and its text, urllib3 and the project URLs."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"airflow_provider_cftunnel-{version}.dist-info"
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        license_file = f"{dist_info}/licenses/LICENSE"
        license_text = archive.read(license_file).decode() if license_file in names else ""
    fields = [line.split(": ", 1) for line in metadata.split("\n\n", 1)[0].splitlines() if ": " in line]
    problems = []
    if ["Version", version] not in fields:
        problems.append(f"Version is not {version}")
    if ["License-Expression", "Apache-2.0"] not in fields or ["License-File", "LICENSE"] not in fields:
        problems.append("no License-Expression: Apache-2.0 with License-File: LICENSE")
    if "Apache License" not in license_text or "Version 2.0" not in license_text:
        problems.append("the Apache-2.0 text is not in the wheel")
    if not any(key == "Requires-Dist" and value.replace(" ", "") == "urllib3>=2" for key, value in fields):
        problems.append("urllib3>=2 is not a dependency")
    urls = {value.split(",", 1)[0].strip() for key, value in fields if key == "Project-URL"}
    if missing := [name for name in URLS if name not in urls]:
        problems.append(f"no Project-URL for {', '.join(missing)}")
    if any(name.startswith(("tests/", "example_dags/", "scripts/", "bench/")) for name in names):
        problems.append("the wheel carries files outside the package")
    if problems:
        raise SmokeError(f"{wheel.name}: " + "; ".join(problems))


def fresh_venv(where: Path, airflow_version: str, wheel: Path) -> Path:
    """A new virtualenv with apache-airflow and the wheel; return its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = where / "bin" / "python"
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        f"apache-airflow=={airflow_version}",
        wheel,
        cwd=where.parent,
    )
    return python


def outside(args: argparse.Namespace) -> None:
    started_all = time.monotonic()
    version = package_version()
    work = Path(tempfile.mkdtemp(prefix="cftunnel-wheel-smoke-"))
    try:
        outdir = Path(args.outdir).resolve() if args.outdir else work / "dist"

        started = time.monotonic()
        sdist, wheel = build(outdir)
        step(f"python -m build: {sdist.name}, {wheel.name}", started)

        started = time.monotonic()
        run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel, cwd=REPO)
        check_wheel_metadata(wheel, version)
        step("twine check --strict; wheel metadata: version, Apache-2.0 and LICENSE, urllib3>=2, project URLs", started)

        started = time.monotonic()
        python = fresh_venv(work / "venv", args.airflow_version, wheel)
        step(f"fresh virtualenv: apache-airflow=={args.airflow_version} and the wheel", started)

        inner = work / "wheel_smoke.py"  # run from the temporary directory: the source tree is not on sys.path
        shutil.copy(__file__, inner)
        dags = work / "dags"
        dags.mkdir()
        shutil.copy(REPO / "example_dags" / f"{EXAMPLE_DAG}.py", dags)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        command = [str(python), str(inner), "--inner", str(dags), version, str(REPO)]
        if subprocess.run(command, cwd=work, env=env, check=False).returncode != 0:
            raise SmokeError("the checks inside the fresh virtualenv failed (see above)")
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wheel smoke passed in {time.monotonic() - started_all:.0f} s")


# ---- inside the fresh virtualenv ---------------------------------------------------------------------------


def inside(dags: Path, version: str, source: Path) -> None:
    from importlib.metadata import version as installed_version

    started = time.monotonic()
    import airflow_provider_cftunnel

    location = Path(airflow_provider_cftunnel.__file__).resolve()
    if Path(sys.prefix).resolve() not in location.parents or source.resolve() in location.parents:
        raise SmokeError(f"airflow_provider_cftunnel loaded from {location}, not from the fresh virtualenv")
    if not airflow_provider_cftunnel.__version__ == installed_version(DISTRIBUTION) == version:
        raise SmokeError(
            f"versions differ: package {airflow_provider_cftunnel.__version__}, "
            f"distribution {installed_version(DISTRIBUTION)}, source {version}"
        )
    step(f"airflow_provider_cftunnel {version} loads from the virtualenv's site-packages", started)

    from airflow_provider_cftunnel.testing import CloudflareSimulator
    from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI

    home = dags.parent / "airflow-home"
    home.mkdir()
    started = time.monotonic()
    listed = AirflowCLI(home, dags).run("providers", "list", "-o", "json", check=True).stdout
    providers = json.loads(listed[listed.index("[") : listed.rindex("]") + 1])
    mine = [p for p in providers if p.get("package_name") == DISTRIBUTION]
    if not mine or mine[0].get("version") != version:
        raise SmokeError(f"`airflow providers list` does not list {DISTRIBUTION} {version}:\n{listed[-2000:]}")
    step(f"airflow providers list: {DISTRIBUTION} {version}", started)

    started = time.monotonic()
    simulator_cli(dags.parent)
    step("python -m airflow_provider_cftunnel.testing: --print-scenario, then served until SIGTERM", started)

    started = time.monotonic()
    with CloudflareSimulator({"up_after": 0, "connections": 4}) as sim:
        env = {
            **sim.airflow_env(),
            "CFTUNNEL_TUNNEL_ID": str(sim.tunnel_id),
        }
        result = AirflowCLI(home, dags, env).dags_test(EXAMPLE_DAG, timeout=600)
        if result.returncode != 0:
            raise SmokeError(f"airflow dags test {EXAMPLE_DAG} exited {result.returncode}:\n{result.stdout[-4000:]}")
        asked = sim.requests_matching(r"^/client/v4/accounts/")
        if not asked or any(record.status != 200 for record in asked):
            statuses = [record.status for record in asked]
            raise SmokeError(f"{EXAMPLE_DAG} passed, but the simulator answered {statuses or 'no request'}")
        if str(sim.api_token) in result.stdout:
            raise SmokeError("the API token appears in the output of airflow dags test")
    step(f"airflow dags test {EXAMPLE_DAG} against the simulator", started)


def simulator_cli(work: Path) -> None:
    """The simulator's command line prints its scenario, and serves until SIGTERM."""
    command = [sys.executable, "-m", "airflow_provider_cftunnel.testing"]
    printed = json.loads(run(*command, "--print-scenario", cwd=work, timeout=60))
    if not isinstance(printed, dict) or not printed.get("accounts"):
        raise SmokeError(f"--print-scenario printed no scenario: {printed!r}"[:500])
    ready = work / "simulator-ready.json"
    server = subprocess.Popen(
        [*command, "--port", "0", "--ready-file", str(ready)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SmokeError("the simulator did not write its ready file")
            time.sleep(0.1)
        info = json.loads(ready.read_text())
        request = urllib.request.Request(
            info["base_url"] + "/user/tokens/verify", headers={"Authorization": f"Bearer {info['api_token']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = json.load(answer)["result"]["status"]
        if status != "active":
            raise SmokeError(f"the served simulator says the token is {status!r}")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise SmokeError("the simulator did not stop on SIGTERM") from None
    if code != 0:
        raise SmokeError(f"the simulator exited {code} on SIGTERM:\n{server.stdout.read() if server.stdout else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airflow-version", default="3.3.2", help="Airflow in the fresh virtualenv (default 3.3.2)")
    parser.add_argument("--outdir", help="where to build the sdist and the wheel (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary virtualenv and Airflow home")
    parser.add_argument("--inner", nargs=3, metavar=("DAGS", "VERSION", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        if args.inner:
            inside(Path(args.inner[0]), args.inner[1], Path(args.inner[2]))
        else:
            outside(args)
    except SmokeError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
