"""The lock order (core/locks.RANKS) is checked in tests, and an inverted order fails."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otel_gitjob import Lifecycle
from otel_gitjob._internal.core import locks
from otel_gitjob._internal.core.lifecycle import hooks_of

DESIGN_PAGE = Path(__file__).parent.parent / "docs" / "design" / "locks.md"


@pytest.fixture
def inversions() -> Iterator[Callable[[], list[str]]]:
    """``inversions()``: those the test caused on purpose, taken out of the suite-wide check at teardown."""
    seen = len(locks.violations)
    yield lambda: locks.violations[seen:]
    del locks.violations[seen:]


def test_the_suite_runs_with_the_check_on() -> None:
    assert locks.CHECK
    assert isinstance(locks.ranked_lock("drops"), locks._CheckedLock)


def test_locks_taken_in_rank_order_pass_and_an_inversion_fails(inversions: Callable[[], list[str]]) -> None:
    op, state = locks.ranked_lock("registry.op", reentrant=True), locks.ranked_lock("registry.state")
    with op, op, state:  # re-entering an RLock is fine
        pass
    with state, pytest.raises(locks.LockOrderError, match="registry.op .* while holding registry.state"):
        op.acquire()
    assert not op.locked() and len(inversions()) == 1  # the refused lock was not taken
    other = locks.ranked_lock("registry.state")
    with state, pytest.raises(locks.LockOrderError):
        other.acquire()  # two locks of one rank never nest
    assert state.acquire(blocking=False)  # a try-acquire cannot deadlock: never refused
    state.release()


def test_a_condition_over_a_ranked_lock_waits_and_notifies() -> None:
    cond = locks.ranked_condition("expiry")
    done: list[bool] = []

    def notifier() -> None:
        with cond:
            done.append(True)
            cond.notify_all()

    with cond:
        thread = threading.Thread(target=notifier)
        thread.start()
        assert cond.wait_for(lambda: done, timeout=5)
    thread.join(5)


def test_an_inversion_inside_a_never_raise_path_is_still_caught(inversions: Callable[[], list[str]]) -> None:
    with Lifecycle() as lifecycle:
        registry = hooks_of(lifecycle).registry
        with registry._state_lock:
            assert lifecycle.forget(("ns", "name")) == 0  # the error is swallowed, as forget never raises
    assert inversions() == ["took registry.op (rank 30) while holding registry.state (rank 80)"]


def test_joining_a_thread_while_holding_a_lock_fails(inversions: Callable[[], list[str]]) -> None:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    with locks.ranked_lock("drops"), pytest.raises(locks.LockOrderError, match="joined .* while holding drops"):
        locks.join(thread, 5)
    locks.join(thread, 5)
    assert not thread.is_alive() and len(inversions()) == 1


def test_without_the_check_the_factory_returns_plain_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "CHECK", False)
    assert type(locks.ranked_lock("drops")) is type(threading.Lock())
    assert type(locks.ranked_lock("registry.op", reentrant=True)) is type(threading.RLock())
    with pytest.raises(KeyError, match="add it there"):
        locks.ranked_lock("nobody")


def test_every_lock_of_the_package_comes_from_the_factory() -> None:
    package = Path(locks.__file__).parent.parent.parent
    direct = [
        "%s:%d" % (path.relative_to(package), number)
        for path in package.rglob("*.py")
        if path.name != "locks.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"threading\.(R?Lock|Condition|Semaphore|BoundedSemaphore)\(", line)
    ]
    assert direct == []


def test_the_design_page_lists_every_lock_in_rank_order() -> None:
    text = DESIGN_PAGE.read_text()
    named = re.findall(r"`([a-z_.]+)` \(rank (\d+)\)", text)
    assert {name: int(rank) for name, rank in named} == locks.RANKS
    ranks = [int(rank) for _name, rank in named]
    assert ranks == sorted(ranks)
