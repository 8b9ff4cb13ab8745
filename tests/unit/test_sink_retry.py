"""The sink's shorter retry after CONCURRENT_TRANSACTIONS, checked against the installed aiokafka.

aiokafka keeps the wait in a module constant of its sender; if a release renamed it, the setting
would silently do nothing and every live flush would wait 20 ms again. These tests read the wait
the way aiokafka's own handler decides it.
"""

from types import SimpleNamespace

import pytest
from aiokafka.errors import ConcurrentTransactions
from aiokafka.producer import sender

from cdc.sink import CONCURRENT_TRANSACTIONS_RETRY, shorten_concurrent_transactions_retry


def _wait_after_concurrent_transactions(partitions_in_transaction: set[object]) -> float | None:
    manager = SimpleNamespace(txn_partitions=partitions_in_transaction, transactional_id="t",
                              producer_id=1, producer_epoch=0, partition_added=lambda tp: None)
    fake_sender = SimpleNamespace(_retry_backoff=0.1, _txn_manager=manager)
    handler = sender.AddPartitionsToTxnHandler(fake_sender, [])
    response = SimpleNamespace(errors=[("wpcdc.posts", [(0, ConcurrentTransactions.errno)])])
    return handler.handle_response(response)


@pytest.fixture(autouse=True)
def _aiokafkas_own_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setting is process-wide: put aiokafka's value back after each test."""
    monkeypatch.setattr(sender, "BACKOFF_OVERRIDE", sender.BACKOFF_OVERRIDE)


def test_the_first_partition_of_a_transaction_is_asked_for_again_after_2_ms() -> None:
    assert shorten_concurrent_transactions_retry()
    assert _wait_after_concurrent_transactions(set()) == CONCURRENT_TRANSACTIONS_RETRY == 0.002


def test_the_wait_inside_a_transaction_stays_aiokafkas() -> None:
    shorten_concurrent_transactions_retry()
    assert _wait_after_concurrent_transactions({"a partition added already"}) == 0.1
