"""The operator's own Prometheus metrics.

Label values are namespaces and object names, never free text, so the series
count stays bounded by the number of objects the operator manages.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "modelship_operator_reconciles", "Reconciles run, by kind and result.",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "modelship_operator_reconcile_duration_seconds", "Time one reconcile took.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OBJECTS_BY_PHASE = Gauge(
    "modelship_operator_objects", "Objects the operator manages, by kind and phase.",
    ["kind", "phase"],
)
FINETUNE_RUNS = Counter(
    "modelship_finetune_runs",
    "Fine-tuning runs that ended, by ModelDeployment and outcome (promoted, rejected, failed).",
    ["namespace", "model", "outcome"],
)
