"""``AirflowCLI.task_logs``: a task's log files where Airflow's default layout puts them."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI


def test_task_logs_finds_one_task_of_one_run(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    task = logs / "dag_id=gate" / "run_id=manual__2026-12-07T18:00:00+00:00" / "task_id=wait"
    other_task = logs / "dag_id=gate" / "run_id=manual__2026-12-07T18:00:00+00:00" / "task_id=deploy"
    other_run = logs / "dag_id=gate" / "run_id=manual__2026-12-08T18:00:00+00:00" / "task_id=wait"
    for folder in (task, other_task, other_run):
        folder.mkdir(parents=True)
    for name in ("attempt=2.log", "attempt=1.log", "attempt=1.log.trigger.7.log"):
        (task / name).write_text(name)
    (other_task / "attempt=1.log").write_text("other task")
    (other_run / "attempt=1.log").write_text("other run")
    cli = AirflowCLI(tmp_path, tmp_path / "dags")

    found = cli.task_logs("gate", "manual__2026-12-07T18:00:00+00:00", "wait")

    assert [path.name for path in found] == ["attempt=1.log", "attempt=1.log.trigger.7.log", "attempt=2.log"]
    triggers = cli.task_logs("gate", "manual__2026-12-07T18:00:00+00:00", "wait", "*.trigger.*")
    assert [path.name for path in triggers] == ["attempt=1.log.trigger.7.log"]
    assert cli.task_logs("gate", "scheduled__2026-12-07", "wait") == []
