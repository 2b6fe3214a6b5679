"""spec.monitoring: the thresholds behind a model's Prometheus alerts.

Defaults live in the schema, so `kubectl get -o yaml` shows the thresholds an
alert actually uses, and the operator reads the same values through the model.
"""

from __future__ import annotations

from pydantic import Field

from modelship_operator.api.base import ApiModel

# Prometheus' duration syntax, as an alert rule's `for:` takes it.
PROMETHEUS_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
REFERENCE_URI = r"^(pvc|file|s3|https?)://\S+$"


class Monitoring(ApiModel):
    """Metrics, alerts, drift detection and payload logging for the model."""

    enabled: bool = Field(
        True,
        description="Create a ServiceMonitor and a PrometheusRule for this model (when the "
        "Prometheus Operator's CRDs are installed).",
    )
    error_rate_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Alert when this fraction of requests fails (0.05 is 5%).",
    )
    latency_p99_seconds: float = Field(
        0.5,
        gt=0,
        le=3600,
        description="Alert when the 99th percentile of request latency exceeds this many "
        "seconds.",
    )
    drift_threshold: float = Field(
        0.2,
        gt=0,
        le=100,
        description="Alert when the population stability index (PSI) of an input or output "
        "feature against the training reference exceeds this value; 0.1 is a small shift, "
        "0.25 a large one.",
    )
    anomaly_rate_threshold: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Alert when this fraction of outputs is anomalous (NaN, infinite or "
        "outside the range seen in training).",
    )
    for_: str = Field(
        "5m",
        alias="for",
        max_length=32,
        pattern=PROMETHEUS_DURATION,
        description='How long a condition must hold before its alert fires, as a Prometheus '
        'duration ("30s", "5m", "1h").',
    )
    payload_log_sample_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of requests whose inputs and outputs the server logs "
        "(0 logs none, 1 logs all).",
    )
    reference: str | None = Field(
        None,
        max_length=2048,
        pattern=REFERENCE_URI,
        description="URI of a reference.json with the feature statistics drift is measured "
        "against. Absent: the reference.json stored next to the serving version.",
    )
