"""The two instance files: local SQLite with a run queue, and PostgreSQL from the environment."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parents[2]


def test_local_instance_is_sqlite_with_a_limited_queue_and_no_telemetry(tmp_path: Path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert Path(instance.root_directory) == tmp_path
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        assert coordinator.get_run_queue_config().max_concurrent_runs == 3
        limits = {(limit["key"], limit.get("value")): limit["limit"]
                  for limit in coordinator.get_run_queue_config().tag_concurrency_limits}
        assert limits[("dagster/backfill", None)] == 2
        assert limits[("feedback/trigger", "landing_sensor")] == 2
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled


def test_postgres_instance_takes_every_connection_setting_from_the_environment(tmp_path: Path):
    shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    database = config["storage"]["postgres"]["postgres_db"]
    assert {k: v for k, v in database.items() if isinstance(v, dict)} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"}}
    assert database["scheme"] == "postgresql+psycopg2"
    assert config["telemetry"] == {"enabled": False}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
