"""A real Prometheus scrapes drift metrics and fires the generated drift alert.

Two sources: a bare HTTP endpoint exporting a DriftObserver's registry (the
metrics alone), and the real modelship-server process serving a model with a
reference.json. In both, traffic like the reference leaves the alert silent
and traffic that shifts the inputs sends it to `firing`, as Prometheus' own
/api/v1/alerts reports it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from modelship_operator.builders.monitoring import AlertThresholds, rules_file
from modelship_serving.monitoring import DriftObserver, DriftSettings, parse_reference
from modelship_serving.monitoring.metrics import attach
from modelship_serving.monitoring.reference import build_reference
from tests.monitoring import serving_process
from tests.monitoring.prometheus_process import Prometheus, running_prometheus, wait_for

pytestmark = pytest.mark.slow

NAMESPACE = "ml"
ALERT = "ModelshipDataDrift"
FOR = "2s"


def drift_rules(model: str) -> str:
    return rules_file(name=model, namespace=NAMESPACE,
                      thresholds=AlertThresholds(drift_psi=0.2, for_duration=FOR))


def assert_stays_silent(prometheus: Prometheus, model: str) -> None:
    """Wait until calm scores were scraped and evaluated for longer than `for`."""
    expr = f'max(modelship_drift_score{{namespace="{NAMESPACE}",model="{model}"}})'
    wait_for("calm drift scores in Prometheus", lambda: prometheus.query(expr))
    seen = time.time()
    wait_for("rule evaluations past the `for` duration",
             lambda: prometheus.last_evaluation() > seen + 3)
    [sample] = prometheus.query(expr)
    assert float(sample["value"][1]) < 0.2
    assert prometheus.alert_state(ALERT) == "inactive"


def assert_fires(prometheus: Prometheus, model: str) -> dict[str, str]:
    wait_for(f"{ALERT} to fire", lambda: prometheus.alert_state(ALERT) == "firing", timeout=45)
    [alert] = [a for a in prometheus.alerts() if a["labels"]["alertname"] == ALERT]
    assert float(alert["value"]) > 0.2
    return dict(alert["labels"])


@pytest.fixture
def exporter() -> Iterator[tuple[DriftObserver, str]]:
    """A DriftObserver exporting on a bare prometheus_client HTTP server."""
    rng = np.random.default_rng(0)
    reference = parse_reference(build_reference({"x": rng.normal(size=(2_000, 5))},
                                                {"y": rng.random((2_000, 1))}))
    registry = CollectorRegistry()
    observer = DriftObserver(reference, model="toy", version="1",
                             settings=DriftSettings(slots=5, slot_samples=200, min_samples=200))
    attach(observer, registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield observer, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_drift_from_a_bare_exporter_fires_the_alert(
        exporter: tuple[DriftObserver, str], tmp_path: Path) -> None:
    observer, target = exporter
    rng = np.random.default_rng(1)

    def send(shift: float) -> None:
        for _ in range(20):
            observer.observe("toy", "1", {"x": rng.normal(loc=shift, size=(50, 5))},
                             {"y": rng.random((50, 1))})

    with running_prometheus(tmp_path / "prom", targets=[target],
                            target_labels={"namespace": NAMESPACE},
                            rules=drift_rules("toy")) as prometheus:
        wait_for("the exporter to be scraped", prometheus.targets_up)
        send(shift=0.0)
        assert_stays_silent(prometheus, "toy")
        send(shift=2.0)
        labels = assert_fires(prometheus, "toy")
    assert labels["namespace"] == NAMESPACE and labels["model"] == "toy"
    assert labels["severity"] == "warning"


def send_rows(server: serving_process.Server, rows: np.ndarray, batch: int = 32) -> None:
    for start in range(0, len(rows), batch):
        server.infer(rows[start:start + batch])


def test_shifted_traffic_to_the_real_server_fires_the_alert(tmp_path: Path) -> None:
    repository = serving_process.write_repository(tmp_path / "repo")
    data = serving_process.breast_cancer()
    rng = np.random.default_rng(2)
    calm = data[rng.integers(0, len(data), size=640)]
    # Every feature moved up by two of its standard deviations: a unit or sensor change.
    shifted = calm + 2.0 * data.std(axis=0)

    with serving_process.running_server(repository, tmp_path / "server.log") as server, \
            running_prometheus(tmp_path / "prom", targets=[server.metrics_target],
                               target_labels={"namespace": NAMESPACE},
                               rules=drift_rules(serving_process.MODEL)) as prometheus:
        wait_for("the server to be scraped", prometheus.targets_up)
        send_rows(server, calm)
        assert_stays_silent(prometheus, serving_process.MODEL)
        send_rows(server, np.concatenate([shifted] * 3))
        labels = assert_fires(prometheus, serving_process.MODEL)

        # The same scrapes carry the server's own request metrics under the same labels.
        expr = f'sum(nv_inference_count{{namespace="{NAMESPACE}",model="clf"}})'
        wait_for("every inference to be counted", lambda: [
            s for s in prometheus.query(expr) if float(s["value"][1]) == len(calm) * 4])
    assert labels["model"] == "clf" and labels["modeldeployment"] == "clf"

