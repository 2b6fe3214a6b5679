"""Errors raised by drift and anomaly detection.

Monitoring must never take a model down: the server treats these as reasons to
serve without a drift observer (logged as a warning), never as load failures.
"""

from __future__ import annotations


class MonitoringError(Exception):
    """Base of every error that monitoring raises on purpose."""


class InvalidReference(MonitoringError):
    """A reference.json that cannot be used: missing fields, bad edges or fractions."""
