"""The hash-chained audit log detects edits, removals and truncation."""

from __future__ import annotations

import pytest

from callvault.apps.audit.models import AuditEntry, AuditError, AuditHead, record, verify_chain
from tests.apps.conftest import Cast


def _fill(cast: Cast) -> list[AuditEntry]:
    return [
        record("login", user=cast.member, ip="192.0.2.1"),
        record("playback", user=cast.member, obj=cast.call_a, ip="192.0.2.1", seconds=12.5),
        record("login_failed", username="mallory", ip="198.51.100.7"),
        record("download", user=cast.supervisor, obj=cast.call_a),
    ]


def test_an_untouched_chain_verifies(cast: Cast) -> None:
    entries = _fill(cast)
    report = verify_chain()
    assert (report.ok, report.entries, report.problems) == (True, 4, [])
    assert entries[1].object_type == "call" and entries[1].object_id == str(cast.call_a.pk)
    assert entries[2].username == "mallory" and entries[2].user is None
    assert entries[1].prev_hash == entries[0].hash


def test_entries_cannot_be_changed_or_deleted_through_the_model(cast: Cast) -> None:
    entry = _fill(cast)[0]
    entry.action = "logout"
    with pytest.raises(AuditError):
        entry.save()
    with pytest.raises(AuditError):
        entry.delete()


def test_an_edited_entry_is_detected(cast: Cast) -> None:
    entries = _fill(cast)
    AuditEntry.objects.filter(pk=entries[1].pk).update(username="someone-else")
    report = verify_chain()
    assert not report.ok
    assert report.problems == [
        f"entry {entries[1].pk}: content does not match its hash (the entry was edited)"
    ]


def test_a_removed_entry_is_detected(cast: Cast) -> None:
    entries = _fill(cast)
    AuditEntry.objects.filter(pk=entries[1].pk)._raw_delete(AuditEntry.objects.db)  # bypass the model guard
    report = verify_chain()
    assert not report.ok
    assert report.problems[0].startswith(f"entry {entries[2].pk}: previous-hash link broken")


def test_removing_the_newest_entries_is_detected(cast: Cast) -> None:
    entries = _fill(cast)
    AuditEntry.objects.filter(pk=entries[-1].pk)._raw_delete(AuditEntry.objects.db)
    report = verify_chain()
    assert not report.ok
    assert "newest entries" in report.problems[-1]
    assert AuditHead.objects.get(pk=1).last_id == entries[-1].pk
