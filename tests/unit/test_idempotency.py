"""The idempotency rules of a batch (service/idempotency.py), without a database."""

from __future__ import annotations

from moneymovement.domain.commands import VoidTransfer
from moneymovement.domain.errors import DomainError, Reason, Rejected
from moneymovement.service.idempotency import Deduplicator, Replay, Twin, digest_of
from moneymovement.service.outcomes import rejection_to_json
from moneymovement.storage.ledger import StoredOutcome

VOID_A, VOID_B = VoidTransfer("tr_a"), VoidTransfer("tr_b")
REFUSED = Rejected(Reason.TRANSFER_NOT_PENDING, "transfer tr_a is VOIDED, not PENDING")


def _recorded() -> dict[str, StoredOutcome]:
    return {"r": StoredOutcome(digest_of(VOID_A), rejection_to_json(REFUSED))}


def test_a_true_repeat_replays_its_record_even_behind_another_request_with_its_id() -> None:
    dedup = Deduplicator(_recorded())
    first = dedup.check(0, VOID_B, "r", digest_of(VOID_B))
    second = dedup.check(1, VOID_A, "r", digest_of(VOID_A))
    assert isinstance(first, Replay)
    assert isinstance(first.answer, DomainError)
    assert first.answer.reason is Reason.REQUEST_ID_REUSED
    assert isinstance(second, Replay)
    assert isinstance(second.answer, Rejected)
    assert second.answer.reason is Reason.TRANSFER_NOT_PENDING


def test_copies_in_one_batch_share_the_first_and_another_body_is_refused() -> None:
    dedup = Deduplicator({})
    assert dedup.check(0, VOID_A, "n", digest_of(VOID_A)) is None  # runs
    assert dedup.check(1, VOID_A, "n", digest_of(VOID_A)) == Twin(0)
    other = dedup.check(2, VOID_B, "n", digest_of(VOID_B))
    assert isinstance(other, Replay)
    assert isinstance(other.answer, DomainError)
    assert other.answer.reason is Reason.REQUEST_ID_REUSED
