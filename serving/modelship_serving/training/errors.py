"""The trainer's error tree.

Every failure the trainer can explain carries a ``reason`` (a CamelCase word the
operator copies into a condition) and knows whether running the same Job again
could help. Permanent failures (a bad config, a missing dataset, an export that
does not match PyTorch) exit with code 2 so a Job's ``podFailurePolicy`` can stop
retrying them; everything else exits with 1 and may be retried.
"""

from __future__ import annotations

EXIT_RETRYABLE = 1
EXIT_PERMANENT = 2


class TrainerError(Exception):
    """A failure the trainer reports in its termination message."""

    reason = "TrainingFailed"
    retryable = False

    @property
    def exit_code(self) -> int:
        return EXIT_RETRYABLE if self.retryable else EXIT_PERMANENT


class InvalidConfig(TrainerError):
    reason = "InvalidConfig"


class DatasetNotFound(TrainerError):
    reason = "DatasetNotFound"


class InvalidDataset(TrainerError):
    reason = "InvalidDataset"


class BaseModelNotFound(TrainerError):
    reason = "BaseModelNotFound"


class InvalidBaseModel(TrainerError):
    reason = "InvalidBaseModel"


class UnsupportedArchitecture(TrainerError):
    reason = "UnsupportedArchitecture"


class TrainingDiverged(TrainerError):
    reason = "TrainingDiverged"


class ExportFailed(TrainerError):
    reason = "ExportFailed"


class ExportMismatch(TrainerError):
    reason = "ExportMismatch"


class VersionExists(TrainerError):
    reason = "VersionExists"


class DistributedSetupFailed(TrainerError):
    """The process group could not form (a peer missing, a port taken)."""

    reason = "DistributedSetupFailed"
    retryable = True


class Interrupted(TrainerError):
    """SIGTERM arrived (the Job was deleted or the node is draining)."""

    reason = "Interrupted"
    retryable = True


class InternalError(TrainerError):
    """A broken invariant inside the trainer: a bug, not the user's mistake."""

    reason = "InternalError"
    retryable = True
