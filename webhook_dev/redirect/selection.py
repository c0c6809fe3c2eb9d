"""What ``up``, ``doctor`` and ``down`` are asked to redirect: one spec from the flags. Pure.

``--webhook NAME[/ENTRY]``, ``--service NS/NAME`` and ``--crd NAME`` (repeatable) become one
:class:`Selection`, checked once at the command line's edge, so the session and discovery
take one value instead of three loose parameters (docs/architecture.md, "Flags become
specs").
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook_dev.errors import UsageError


@dataclass(frozen=True)
class Selection:
    """The callers chosen by name; discovery adds every other caller of their Service."""

    webhook: str | None = None  # NAME or NAME/ENTRY
    service: str | None = None  # NAMESPACE/NAME
    crds: tuple[str, ...] = ()  # CRD names (PLURAL.GROUP) whose conversion to redirect

    @classmethod
    def from_flags(
        cls, webhook: str | None, service: str | None, crds: tuple[str, ...] = ()
    ) -> Selection:
        """:raises UsageError: nothing chosen, both --webhook and --service, or a
        --service that is not NAMESPACE/NAME."""
        if webhook and service:
            raise UsageError("say what to redirect: --webhook or --service, not both")
        if not (webhook or service or crds):
            raise UsageError(
                "say what to redirect: --webhook NAME[/ENTRY], --service NS/NAME or --crd NAME"
            )
        if service:
            namespace, _, name = service.partition("/")
            if not namespace or not name or "/" in name:
                raise UsageError(f"--service wants NAMESPACE/NAME, not {service!r}")
        return cls(webhook or None, service or None, tuple(dict.fromkeys(crds)))

    @property
    def admission(self) -> bool:
        """Whether webhook entries were asked for (``--crd`` alone asks for none)."""
        return bool(self.webhook or self.service)

    def describe(self) -> str:
        parts = [f"--webhook {self.webhook}"] if self.webhook else []
        parts += [f"--service {self.service}"] if self.service else []
        parts += [f"--crd {name}" for name in self.crds]
        return " ".join(parts)
