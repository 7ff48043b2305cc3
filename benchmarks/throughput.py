"""The exporter alone: how fast closed contexts become accepted messages in a local Mona.

One thread produces ``--messages`` request-like contexts (three ``export()`` calls each,
which coalesce into one wire message) as fast as it can; the exporter batches and sends
them with its defaults (500 messages per POST, 2 sender threads, keep-alive sessions)
to the local Mona server, which validates every message. The clock stops when
``flush()`` returns, i.e. when the server has answered the last batch. The queue is
sized to hold everything, so the producer never meets "queue full": this measures the
sending side, not the drop policy.

    python -m benchmarks.throughput --messages 200000
"""

from __future__ import annotations

import argparse
import time

from .common import emit, sink_endpoints
from .sinks import SinkClient
from .tools import CONTEXT_CLASS, Ours, field_groups


def measure(messages: int, sink: SinkClient) -> dict:
    import mona_middleware as mona

    options = Ours(sink.endpoints).options()
    del options["context_class"]
    mona.configure(**options, queue_size=max(messages + 10, 10_000))
    with mona.context(CONTEXT_CLASS):  # the token and the first connection, untimed
        mona.export({"warm": True})
    mona.flush(30)
    warm = sink.stats()["mona"]
    export, context = mona.export, mona.context
    started = time.perf_counter()
    for n in range(messages):
        with context(CONTEXT_CLASS):
            for fields in field_groups(n):
                export(fields)
    produced = time.perf_counter()
    flushed = mona.flush(300)
    done = time.perf_counter()
    stats = sink.settled(quiet=0.1, limit=2.0)["mona"]
    ours = mona.stats()
    mona.shutdown(5)
    received = stats["messages"] - warm["messages"]
    posts = stats["posts"] - warm["posts"]
    return {
        "messages": messages,
        "received": received,
        "flushed": flushed,
        "seconds": done - started,
        "produce_seconds": produced - started,
        "msgs_per_s": received / (done - started),
        "posts": posts,
        "msgs_per_post": received / posts if posts else None,
        "connections": stats["connections"],  # every connection since the start, token's too
        "connections_during_run": stats["connections"] - warm["connections"],
        "token_requests": stats["token_requests"],
        "dropped": ours.get("dropped"),
        "retries": ours.get("retries"),
        "sink_cpu_s": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    sink = SinkClient(sink_endpoints())
    sink.reset()
    result = measure(args.messages, sink)
    result["sink_cpu_s"] = sink.stats()["sink_cpu_s"]
    emit(result)


if __name__ == "__main__":
    main()
