"""The smallest use of mona_middleware, no web framework and no Mona account needed.

Run: python example_apps/quickstart.py

With no MONA_SDK_* credentials set, messages go to a local JSONL file; this script
exports a few "requests" the way a model-serving view would, flushes, and prints what
was written and what Mona would store for each context.
"""

from __future__ import annotations

import json
import os
import random
import tempfile

import mona_middleware as mona
from mona_middleware.aggregate import aggregate


def handle_prediction(request_id: int) -> None:
    """What a view does: open a context per request, export from anywhere inside it."""
    with mona.context("PREDICTION", context_id=f"req-{request_id}"):
        items = random.randint(1, 20)
        mona.export({"model_version": "v3", "item_count": items})
        score_items(items)


def score_items(items: int) -> None:
    # Deep in the code: no context object passed around, export() finds the request.
    mona.export({"score": round(random.random(), 3)})
    mona.export({"stage_ms": round(random.uniform(1, 9), 2)}, action="ADD")
    mona.export({"stage_ms": round(random.uniform(1, 9), 2)}, action="ADD")


def main() -> None:
    path = os.path.join(tempfile.mkdtemp(prefix="mona-quickstart-"), "messages.jsonl")
    mona.configure(transport="file", file_path=path)
    for request_id in range(5):
        handle_prediction(request_id)
    mona.flush(5)
    with open(path) as lines:
        messages = [json.loads(line) for line in lines]
    print(f"{len(messages)} messages written to {path}:")
    for message in messages[:4]:
        print("  " + json.dumps(message))
    print("\nWhat Mona stores for each context:")
    for (context_class, context_id), fields in aggregate(messages).items():
        print(f"  {context_class} {context_id}: {json.dumps(fields)}")
    print("\nstats():", json.dumps(mona.stats()))


if __name__ == "__main__":
    main()
