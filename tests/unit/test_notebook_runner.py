"""The notebook runner never waits forever: a per-cell timeout on every execution, with an error that
names the notebook, the cell and the setting, and kernel sockets polled in slices so a reply whose
wake-up went missing (jupyter/nbclient#312) is still read."""

from __future__ import annotations

import asyncio
import time
from queue import Empty

import pytest

from vqalib import notebook_runner as nr


def test_cell_timeout_setting(monkeypatch):
    monkeypatch.delenv(nr.CELL_TIMEOUT_ENV, raising=False)
    assert nr.resolve_cell_timeout() == nr.DEFAULT_CELL_TIMEOUT_S
    assert nr.resolve_cell_timeout(42.4) == 42
    monkeypatch.setenv(nr.CELL_TIMEOUT_ENV, "120")
    assert nr.resolve_cell_timeout() == 120
    assert nr.resolve_cell_timeout(7) == 7  # the argument wins over the environment
    monkeypatch.setenv(nr.CELL_TIMEOUT_ENV, "ten minutes")
    with pytest.raises(ValueError, match=nr.CELL_TIMEOUT_ENV):
        nr.resolve_cell_timeout()
    for bad in (0, -5):
        with pytest.raises(ValueError, match="must be > 0"):
            nr.resolve_cell_timeout(bad)


class _MissedWakeupChannel:
    """A kernel socket whose message arrives without waking a waiter, as in jupyter/nbclient#312:
    ``get_msg(timeout=None)`` waits forever; a finite timeout re-checks the socket when it expires
    (what ``zmq.asyncio`` does) and returns the queued message."""

    def __init__(self, arrive_after: float):
        self.t0 = time.monotonic()
        self.arrive_after = arrive_after
        self.timeouts: list[float | None] = []

    async def get_msg(self, timeout=None):
        self.timeouts.append(timeout)
        if timeout is None:
            await asyncio.Event().wait()  # never woken
        await asyncio.sleep(timeout)
        if time.monotonic() - self.t0 >= self.arrive_after:
            return {"msg": "execute_reply"}
        raise Empty


def _run(coro, guard_s=30.0):
    # guard only so that the unsliced channel fails this test instead of hanging it
    return asyncio.run(asyncio.wait_for(coro, guard_s))


def test_sliced_polling_reads_a_reply_whose_wakeup_was_missed():
    ch = _MissedWakeupChannel(arrive_after=0.3)
    nr._slice_polls(ch, 0.05)
    assert _run(ch.get_msg(timeout=None)) == {"msg": "execute_reply"}
    assert None not in ch.timeouts and max(ch.timeouts) <= 0.05


def test_sliced_polling_still_honours_the_callers_deadline():
    ch = _MissedWakeupChannel(arrive_after=1e9)
    nr._slice_polls(ch, 0.05)
    t0 = time.monotonic()
    with pytest.raises(Empty):
        _run(ch.get_msg(timeout=0.2))
    assert sum(ch.timeouts) == pytest.approx(0.2, abs=0.02) and time.monotonic() - t0 >= 0.2


def test_unsliced_channel_would_wait_forever():
    """The control: without slicing the same channel never returns (the hang the runner prevents)."""
    ch = _MissedWakeupChannel(arrive_after=0.0)
    with pytest.raises(asyncio.TimeoutError):
        _run(ch.get_msg(timeout=None), guard_s=1.0)
