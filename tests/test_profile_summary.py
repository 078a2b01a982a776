"""``bench.profile_summary``: py-spy's raw stacks summed by leaf category and by thread."""

from __future__ import annotations

from bench.profile_summary import summarize

_LOOP = (
    "<module> (tandem:6);main (tandem/cli/main.py:153);Runner.run (asyncio/runners.py:118);"
    "BaseEventLoop.run_forever (asyncio/base_events.py:607);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
)
_POLLER = "Thread._bootstrap (threading.py:995);0x7f00 (grpc/_cython/cygrpc.so)"


def _shares(rows: list[dict[str, object]]) -> dict[object, object]:
    return {row["what"]: row["samples"] for row in rows}


def test_samples_are_split_by_thread_and_leaf_category() -> None:
    raw = "\n".join(
        [
            f"{_LOOP};_relay (tandem_gateway/pool.py:170);sendmsg (libc.so.6) 3",
            f"{_LOOP};_relay (tandem_gateway/pool.py:171) 1",
            f"{_POLLER};epoll_wait (libc.so.6) 5",
            f"{_POLLER};write (libc.so.6) 2",
        ]
    )

    summary = summarize(raw)

    assert summary["samples"] == 11
    assert summary["busy_samples"] == 6
    assert _shares(summary["by_thread"]["event loop thread"]) == {
        "syscall: send/write": 3,
        "Tandem code": 1,
    }
    assert _shares(summary["by_thread"]["other threads"]) == {
        "waiting (epoll/poll)": 5,
        "syscall: send/write": 2,
    }
