"""The server-wide observer routes batches to one drift observer per model version."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from modelship_serving.monitoring import DriftMonitor, DriftSettings, build_reference

SETTINGS = DriftSettings(min_samples=1)


def write_reference(repo: Path, model: str, version: str, features: int = 3) -> None:
    rng = np.random.default_rng(0)
    directory = repo / model / version
    directory.mkdir(parents=True)
    raw = build_reference({"x": rng.normal(size=(500, features))}, {"y": rng.random((500, 1))})
    (directory / "reference.json").write_text(json.dumps(raw))


def batch(rows: int = 8, features: int = 3) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(rows)
    return {"x": rng.normal(size=(rows, features))}, {"y": rng.random((rows, 1))}


def test_each_version_gets_its_own_observer_on_its_first_batch(tmp_path: Path) -> None:
    write_reference(tmp_path, "a", "1")
    write_reference(tmp_path, "a", "2")
    monitor = DriftMonitor(tmp_path, CollectorRegistry(), settings=SETTINGS)
    assert monitor.observers() == {}

    monitor.observe("a", "1", *batch(8))
    monitor.observe("a", "2", *batch(4))
    monitor.observe("a", "1", *batch(8))
    observers = monitor.observers()
    assert observers[("a", "1")].snapshot().samples == 16
    assert observers[("a", "2")].snapshot().samples == 4


def test_a_version_without_reference_is_looked_up_once(tmp_path: Path) -> None:
    (tmp_path / "plain" / "1").mkdir(parents=True)
    monitor = DriftMonitor(tmp_path, CollectorRegistry(), settings=SETTINGS)
    monitor.observe("plain", "1", *batch())
    write_reference(tmp_path, "plain", "2")
    (tmp_path / "plain" / "1" / "reference.json").write_text("{}")  # too late: remembered
    monitor.observe("plain", "1", *batch())
    assert monitor.observers() == {}


def test_concurrent_first_batches_open_one_observer(tmp_path: Path) -> None:
    write_reference(tmp_path, "a", "1")
    monitor = DriftMonitor(tmp_path, CollectorRegistry(), settings=SETTINGS)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(20):
            monitor.observe("a", "1", *batch(2))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert monitor.observers()[("a", "1")].snapshot().samples == 8 * 20 * 2


def test_unloaded_versions_stop_exporting_at_the_next_scrape(tmp_path: Path) -> None:
    write_reference(tmp_path, "a", "1")
    write_reference(tmp_path, "a", "2")
    registry = CollectorRegistry()
    serving = {("a", "1"), ("a", "2")}
    monitor = DriftMonitor(tmp_path, registry, loaded=lambda: serving, settings=SETTINGS)
    monitor.observe("a", "1", *batch())
    monitor.observe("a", "2", *batch())
    assert 'version="1"' in generate_latest(registry).decode()

    serving.discard(("a", "1"))
    text = generate_latest(registry).decode()
    assert 'version="1"' not in text and 'version="2"' in text
    assert set(monitor.observers()) == {("a", "2")}


def test_closing_the_monitor_removes_every_series(tmp_path: Path) -> None:
    write_reference(tmp_path, "a", "1")
    registry = CollectorRegistry()
    monitor = DriftMonitor(tmp_path, registry, loaded=lambda: [("a", "1")], settings=SETTINGS)
    monitor.observe("a", "1", *batch())
    monitor.close()
    assert "modelship_drift_window_samples{" not in generate_latest(registry).decode()
