"""A flag: one reason the apiserver would reject an answer (or a user should look at it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    """``code`` is stable (tests, filters, the page); ``message`` is for people."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
