"""ServiceMonitor and PrometheusRule of one ModelDeployment, as plain dicts.

Pure functions of plain inputs: the reconciler maps ``spec.monitoring`` onto
``AlertThresholds`` and applies what comes back. The same rule groups are also
emitted as a Prometheus rules file, so ``promtool check rules`` and
``promtool test rules`` prove the very expressions the operator ships.

Every expression is scoped to one model: the server's series by their
``namespace`` (added by the ServiceMonitor scrape) and ``model`` labels,
kube-state-metrics' by the predictor Deployment's name. Expressions aggregate
to a single series, so each alert fires at most once per model, and the rule
labels (``severity``, ``namespace``, ``model``, ``modeldeployment``) carry the
routing. With no traffic, ratios are 0/0 and quantiles NaN, so nothing fires.

Fine-tuning failures are read from the operator's own counter
``modelship_finetune_runs_total{namespace, model, outcome}`` (``model`` is the
ModelDeployment's name there), not from kube-state-metrics' Job series: only
the operator knows a run failed for good (a Job's pods may fail and be
retried, and kube-state-metrics drops Job labels unless an allowlist says
otherwise). The operator must start the ``failed`` series at 0 for each
fine-tuned ModelDeployment, so ``increase`` sees the first failure, and be
scraped with ``honorLabels: true`` so ``namespace`` stays the
ModelDeployment's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
PREDICTOR_SUFFIX = "-predictor"
METRICS_PORT_NAME = "metrics"

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                 "y": 31536000}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as "90s" or "1h30m"."""
    if not _DURATION.match(text):
        raise ValueError(f"not a Prometheus duration: {text!r} (examples: 30s, 5m, 1h30m)")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest whole-second Prometheus duration for ``seconds`` (rounded up)."""
    whole = max(1, int(-(-seconds // 1)))
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class AlertThresholds:
    """When a model's alerts fire; defaults as in ``spec.monitoring``.

    ``rate_window`` is the range of every ``rate()``; ``finetune_lookback`` how
    long a failed fine-tuning run keeps its alert firing (stretched to twice
    ``for_duration`` when that is longer, so the alert can fire at all).
    """

    error_rate: float = 0.05
    latency_p99_seconds: float = 0.5
    drift_psi: float = 0.2
    anomaly_rate: float = 0.01
    for_duration: str = "5m"
    rate_window: str = "5m"
    finetune_lookback: str = "1h"

    def __post_init__(self) -> None:
        for name in ("for_duration", "rate_window", "finetune_lookback"):
            try:
                duration_seconds(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        for name in ("error_rate", "anomaly_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        for name in ("latency_p99_seconds", "drift_psi"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def effective_finetune_lookback(self) -> str:
        lookback = duration_seconds(self.finetune_lookback)
        held = 2 * duration_seconds(self.for_duration)
        return self.finetune_lookback if lookback >= held else format_duration(held)


def _meta(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def build_service_monitor(
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    owner: Mapping[str, Any] | None,
    port: str = METRICS_PORT_NAME,
    path: str = "/metrics",
    interval: str = "15s",
) -> dict[str, Any]:
    """A ServiceMonitor scraping the model's Service on its metrics port.

    ``selector`` are the labels of the predictor's Service; ``labels`` go on
    the ServiceMonitor itself (what a Prometheus' serviceMonitorSelector picks).
    """
    duration_seconds(interval)
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": _meta(name, namespace, labels, owner),
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": port, "path": path, "interval": interval}],
        },
    }


def build_prometheus_rule(
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any] | None,
    thresholds: AlertThresholds,
    model: str | None = None,
) -> dict[str, Any]:
    """A PrometheusRule with the six alerts of one ModelDeployment.

    ``name`` is the ModelDeployment's; ``model`` the model's name in the
    repository (the ``model`` label of the server's metrics), by default the
    same.
    """
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _meta(name, namespace, labels, owner),
        "spec": {"groups": rule_groups(name=name, namespace=namespace, model=model,
                                       thresholds=thresholds)},
    }


def rules_file(
    *,
    name: str,
    namespace: str,
    thresholds: AlertThresholds,
    model: str | None = None,
) -> str:
    """The same rule groups as a Prometheus rules file (YAML), for promtool."""
    groups = rule_groups(name=name, namespace=namespace, model=model, thresholds=thresholds)
    return yaml.dump({"groups": groups}, Dumper=_RulesDumper, sort_keys=False, width=100)


def rule_groups(
    *,
    name: str,
    namespace: str,
    thresholds: AlertThresholds,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """The rule groups shared by the PrometheusRule and the rules file."""
    model = model or name
    t = thresholds
    sel = f'namespace="{_escape(namespace)}",model="{_escape(model)}"'
    window = t.rate_window
    who = f"model {model} (ModelDeployment {namespace}/{name})"

    def rate(metric: str, extra: str = "") -> str:
        return f"rate({metric}{{{sel}{extra}}}[{window}])"

    deployment = f'namespace="{_escape(namespace)}",deployment="{_escape(name)}{PREDICTOR_SUFFIX}"'
    finetune_sel = (f'namespace="{_escape(namespace)}",model="{_escape(name)}",'
                    f'outcome="failed"')
    alerts = [
        _alert(
            "ModelshipHighErrorRate", "critical",
            f"sum({rate('nv_inference_request_failure')})\n"
            f"/\n(sum({rate('nv_inference_request_success')})"
            f" + sum({rate('nv_inference_request_failure')}))\n"
            f"> {t.error_rate:g}",
            summary=f"{who} fails {{{{ $value | humanizePercentage }}}} of requests.",
            description=f"More than {t.error_rate:.2%} of inference requests to {who} failed "
                        f"over the last {window}.",
            runbook="Check the server logs of the predictor pods for the failing requests' "
                    "ids and errors; a rollout of a new model version or a client sending "
                    "a changed signature are the usual causes.",
        ),
        _alert(
            "ModelshipHighLatencyP99", "warning",
            "histogram_quantile(0.99,\n  sum by (le) ("
            f"{rate('modelship_request_duration_seconds_bucket')}))\n"
            f"> {t.latency_p99_seconds:g}",
            summary=f"p99 latency of {who} is {{{{ $value | humanizeDuration }}}}.",
            description=f"The 99th percentile of request latency of {who} is above "
                        f"{t.latency_p99_seconds:g}s over the last {window}.",
            runbook="Compare queue and compute time on the Modelship dashboard: queue time "
                    "means too few replicas or instances (scale out), compute time a slower "
                    "model or a CPU limit that throttles it.",
        ),
        _alert(
            "ModelshipDataDrift", "warning",
            f"max(modelship_drift_score{{{sel}}}) > {t.drift_psi:g}",
            summary=f"Inputs or outputs of {who} drifted "
                    f"(PSI {{{{ $value | printf \"%.2f\" }}}}).",
            description=f"The population stability index of at least one feature of {who} "
                        f"against its training reference is above {t.drift_psi:g}.",
            runbook="Find the drifting tensor and feature with modelship_drift_score on the "
                    "dashboard; check upstream data for a changed unit, encoding or source, "
                    "and fine-tune on recent data if the shift is real.",
        ),
        _alert(
            "ModelshipAnomalousOutputs", "warning",
            f"max(sum by (tensor) ({rate('modelship_anomalous_outputs_total')}))\n"
            f"/\nsum({rate('nv_inference_count')})\n"
            f"> {t.anomaly_rate:g}",
            summary=f"{{{{ $value | humanizePercentage }}}} of outputs of {who} are anomalous.",
            description=f"More than {t.anomaly_rate:.2%} of output rows of {who} were NaN, "
                        f"infinite or outside the training range over the last {window}.",
            runbook="Break modelship_anomalous_outputs_total down by tensor and kind: NaN or "
                    "inf point at inputs the model cannot handle (check for missing values), "
                    "out_of_range at inputs unlike the training data (see drift).",
        ),
        _alert(
            "ModelshipNoReadyReplicas", "critical",
            f"kube_deployment_status_replicas_available{{{deployment}}} == 0\n"
            f"and on (namespace, deployment)\n"
            f"kube_deployment_spec_replicas{{{deployment}}} > 0",
            summary=f"{who} has no ready replica.",
            description=f"Deployment {namespace}/{name}{PREDICTOR_SUFFIX} wants replicas but "
                        "none is available, so every request fails.",
            runbook=f"kubectl -n {namespace} describe deployment {name}{PREDICTOR_SUFFIX} and "
                    "its pods: look for image pull errors, a failing storage initializer, a "
                    "model that does not load, or GPUs that cannot be scheduled.",
        ),
        _alert(
            "ModelshipFineTuningFailed", "warning",
            f"sum(increase(modelship_finetune_runs_total{{{finetune_sel}}}"
            f"[{t.effective_finetune_lookback}])) > 0",
            summary=f"A fine-tuning run of {who} failed.",
            description=f"At least one fine-tuning Job of {who} failed in the last "
                        f"{t.effective_finetune_lookback}; the serving version is unchanged.",
            runbook=f"kubectl -n {namespace} get modeldeployment {name} -o yaml shows the "
                    "run's reason in status.fineTuning; the Job's pod logs hold the trainer's "
                    "output.",
        ),
    ]
    routing = {"namespace": namespace, "model": model, "modeldeployment": name}
    rules = [
        {"alert": alert, "expr": expr, "for": t.for_duration,
         "labels": {"severity": severity, **routing}, "annotations": annotations}
        for alert, severity, expr, annotations in alerts
    ]
    return [{"name": f"modelship.{namespace}.{name}", "rules": rules}]


def _alert(
    name: str,
    severity: str,
    expr: str,
    *,
    summary: str,
    description: str,
    runbook: str,
) -> tuple[str, str, str, dict[str, str]]:
    return name, severity, expr, {"summary": summary, "description": description,
                                  "runbook": runbook}


class _RulesDumper(yaml.SafeDumper):
    """Writes multi-line expressions as literal blocks, readable as PromQL."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RulesDumper.add_representer(str, _represent_str)


def _escape(value: str) -> str:
    """A label value safe inside a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
