"""The smallest use of mona_middleware: no web framework, and no Mona account needed.

Run: python example_apps/quickstart.py

It exports a few "requests" the way a model-serving view would, flushes, and says where
they went, as any app would send them: to Mona with MONA_SDK_* credentials; to a local
collector with the environment ``mona-middleware collector`` prints (then open its
page); with no settings at all, to ./mona-messages.jsonl, whose new lines it prints with
what Mona would store for each context.
"""

from __future__ import annotations

import json
import os
import random

import mona_middleware as mona
from mona_middleware.aggregate import aggregate

REQUESTS = 5


def handle_prediction(request_id: int) -> None:
    """What a view does: open a context per request, export from anywhere inside it."""
    with mona.context("PREDICTION", context_id=f"req-{random.getrandbits(32):08x}-{request_id}"):
        items = random.randint(1, 20)
        mona.export({"model_version": "v3", "item_count": items})
        score_items(items)


def score_items(items: int) -> None:
    # Deep in the code: no context object passed around, export() finds the request.
    mona.export({"score": round(random.random(), 3)})
    mona.export({"stage_ms": round(random.uniform(1, 9), 2)}, action="ADD")
    mona.export({"stage_ms": round(random.uniform(1, 9), 2)}, action="ADD")


def main() -> None:
    config = mona.configure()  # the environment decides, as in any app
    transport, why = config.transport_choice()
    path = os.path.abspath(config.file_path)
    before = os.path.getsize(path) if transport == "file" and os.path.exists(path) else 0
    for request_id in range(REQUESTS):
        handle_prediction(request_id)
    if not mona.flush(10):
        print("not everything was delivered within 10 s:", json.dumps(mona.stats()))
    if transport != "file":
        stats = mona.stats()
        where = config.rest_api_url or "Mona"
        print(f"{REQUESTS} contexts sent to {where} ({why}).")
        print("stats():", json.dumps(stats))
        return
    with open(path, "rb") as file:
        file.seek(before)
        messages = [json.loads(line) for line in file.read().splitlines() if line.strip()]
    print(f"{len(messages)} messages appended to {path} ({why}):")
    for message in messages[:4]:
        print("  " + json.dumps(message))
    print("\nWhat Mona stores for each context:")
    for (context_class, context_id), fields in aggregate(messages).items():
        print(f"  {context_class} {context_id}: {json.dumps(fields)}")
    print(
        "\nTo see them in a browser instead: run `mona-middleware collector`, then run this"
        " again with the `export` lines it prints."
    )


if __name__ == "__main__":
    main()
