"""The provider on a distributed Airflow: PostgreSQL, Celery workers, two triggerers, one of them killed.

The scenario is ``tests/cluster/story.py`` (``make cluster`` runs the same one, printing each step): 100
deferrable sensors on 10 tunnels and a tunnel health watcher (``AssetWatcher``) on a cluster of api-server,
scheduler, dag-processor, two Celery workers and two triggerers, all on loopback against the Cloudflare
simulator and its emulated per-user pool; one triggerer is SIGKILLed while the sensors wait.

What it checks (each a "problem" of the story's result):

* every sensor succeeded exactly once: all 100 task instances ``success`` with ``try_number`` 1, none in
  ``task_instance_history``, each returned its own connector, and each connector's endpoint was asked once
  (the sensor's first poke on a worker: a sensor run twice would ask twice);
* the ``/connections`` requests never exceeded (triggerers x tunnels) in one poke interval, one tunnel was
  never polled more than once per interval per triggerer, and the survivor alone kept polling every tunnel;
* every trigger of the killed triggerer moved to the survivor and logged a poll outcome there;
* the health watcher fired exactly one event per tunnel (inactive -> healthy), even though it moved with the
  killed triggerer; ``cftunnel_cluster_react`` ran successfully for them, no event consumed twice, and each run
  saw exactly the changes it consumed. Airflow 3.3.2 may leave the last events of a burst queued for the next
  change of the asset (its asset queue race, apache/airflow#56050): those are counted
  (``health_events_unconsumed``), any other unconsumed event fails;
* no 429 from the simulator's shared pool; nothing listening beyond 127.0.0.1; no secret in any component or
  task log; no process left after the cluster stopped.

It needs the PostgreSQL server binaries, ``redis-server`` and the ``cluster`` extra: without them it skips
with one line, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cluster.harness import missing_requirements
from tests.cluster.story import StoryConfig, iter_log_text, run_story
from tests.leak_guard import find_leaks, register_secret

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _require_cluster_tools() -> None:
    binaries, packages = missing_requirements()
    missing = binaries + packages
    if not missing:
        return
    how = "apt-get install -y postgresql redis-server; pip install -e '.[cluster]' (or: make cluster)"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI must run the cluster test, but it lacks {', '.join(missing)}: {how}")
    pytest.skip(f"cluster test needs {', '.join(missing)}: {how}")


@pytest.mark.timeout(900)
def test_sensors_and_health_watcher_survive_a_triggerer_dying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_cluster_tools()
    result = run_story(StoryConfig(), tmp_path / "cluster", register_secret=register_secret)
    with capsys.disabled():
        print(f"\n[cftunnel cluster] {json.dumps(result.figures, default=str)}", flush=True)

    leaks = [leak for path, text in iter_log_text(result) for leak in find_leaks(text, str(path))]
    assert not leaks, f"secrets in component or task logs: {[(leak.where, leak.masked) for leak in leaks]}"
    assert result.ok, result.failure_message()
