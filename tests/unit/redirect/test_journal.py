"""The journal survives its own serialisation, refuses versions it does not know, and says
when a holder's lock has gone stale."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from webhook_dev.errors import JournalError
from webhook_dev.redirect import journal
from webhook_dev.redirect.plan import ABSENT, FieldChange, ObjectRef, RedirectPlan

REF = ObjectRef("Service", "/api/v1/namespaces/hooks/services", "sidecar")
PLAN = RedirectPlan(changes=[FieldChange(REF, ("spec", "selector"), {"app": "x"}, ABSENT)])


def _journal() -> journal.Journal:
    return journal.Journal(
        subject=journal.Subject("hooks", "sidecar"),
        session_id="s1",
        holder="dev@laptop (pid 7)",
        context="prod",
        server="https://10.0.0.1:6443",
        plan=PLAN,
        tunnel={"master": "10.0.0.1", "port": 40001},
        recording="/tmp/rec.jsonl",
        created="2026-11-23T17:00:00+00:00",
    )


def test_a_journal_reads_back_as_written() -> None:
    again = journal.Journal.from_json(json.loads(json.dumps(_journal().to_json())), source="x")
    assert again == _journal()


def test_a_journal_of_an_unknown_version_is_refused_with_what_to_do() -> None:
    data = dict(_journal().to_json(), version=99)
    with pytest.raises(JournalError, match="version 99") as raised:
        journal.Journal.from_json(data, source="ConfigMap hooks/webhook-dev-sidecar")
    assert "webhook-dev version that ran `up`" in str(raised.value)


def test_the_local_copy_is_private_and_found_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_DEV_STATE_DIR", str(tmp_path))
    path = journal.write_local(_journal())
    assert path.stat().st_mode & 0o777 == 0o600
    assert journal.read_local_all() == [_journal()]
    journal.remove_local(_journal())
    assert journal.read_local_all() == []


def test_a_lease_is_stale_once_not_renewed_for_its_duration() -> None:
    renewed = datetime(2026, 1, 1, tzinfo=UTC)
    lease = journal.LeaseState("dev", renewed, timedelta(seconds=30), "s1")
    assert not lease.is_stale(now=renewed + timedelta(seconds=29))
    assert lease.is_stale(now=renewed + timedelta(seconds=31))


def test_record_names_stay_valid_dns_subdomains_for_long_names() -> None:
    subject = journal.Subject("hooks", "a" * 300)
    name = subject.object_name
    assert len(name) <= 253 and name.startswith("webhook-dev.hooks.")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)
    assert name != journal.Subject("hooks", "a" * 299).object_name
