"""The small set of typed errors every adapter raises.

The CLI turns each into one line on stderr and an exit code; a traceback is shown only
with ``--debug``. Messages name the object, the problem and what to do next, e.g.
``Service webhooks/sidecar has no port named https: add it or pass --port``.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What every ``webhook-dev`` command exits with; documented in README."""

    OK = 0
    FAILED = 1  # a failure; for ``replay`` a difference; for ``down`` a conflict left alone
    USAGE = 2  # bad usage or unreadable input: nothing was done
    INTERRUPTED = 130  # Ctrl-C


class WebhookDevError(Exception):
    """Base class: an error the user can act on. ``exit_code`` is what the CLI returns."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(WebhookDevError):
    """Bad flags, an unimportable APP, an unreadable or unknown-version recording."""

    exit_code = ExitCode.USAGE


class ReviewError(WebhookDevError):
    """An AdmissionReview (request or response) that is malformed."""


class RecordingError(UsageError):
    """A recording that cannot be read: not JSON Lines, or a format version we do not know."""


class JournalError(UsageError):
    """A journal ``down`` cannot read: not ours, or a format version we do not know."""


class ClusterError(WebhookDevError):
    """The Kubernetes API refused, or an object is not in the shape we need."""


class TunnelError(WebhookDevError):
    """SSH: unreachable, host key unknown or changed, authentication, or a forward refused."""


class PreflightError(WebhookDevError):
    """A check before any change failed; nothing in the cluster was touched."""


class UnreachableError(WebhookDevError):
    """The probe's dry-run calls never reached this machine; the cluster was restored."""


class HeldError(WebhookDevError):
    """Another session holds the redirect of this Service."""


class LabError(WebhookDevError):
    """The local control plane could not be built, started or torn down."""
