"""A Flask model-serving app monitored by mona_middleware.

Run:  python example_apps/flask_app.py            (dev server, port $PORT or 5000)
  or: gunicorn -c example_apps/gunicorn.conf.py example_apps.flask_app:app

Every request becomes a context of class RECOMMENDATIONS; the view adds what a
model-serving endpoint knows (model version, item count, score). Without MONA_SDK_*
credentials the messages go to ./mona-messages.jsonl.
"""

from __future__ import annotations

import os
import random

from flask import Flask, jsonify, request

import mona_middleware as mona
from mona_middleware.flask import MonaFlask

app = Flask(__name__)
app.config["MONA_CONTEXT_CLASS"] = "RECOMMENDATIONS"
app.config["MONA_EXCLUDED_URLS"] = "/health"
MonaFlask(app)

MODEL_VERSION = "2026.11-b"


def score(items: list[int]) -> float:
    # Deep in the model code: export() finds the request's context by itself.
    value = round(sum(items) / (len(items) * 100 or 1), 4)
    mona.export({"score": value, "feature_count": 12})
    return value


@app.post("/predict")
def predict():
    payload = request.get_json(silent=True) or {}
    items = payload.get("items") or [random.randint(1, 100) for _ in range(5)]
    mona.export(
        {
            "model_version": MODEL_VERSION,
            "item_count": len(items),
            "user_segment": payload.get("segment", "unknown"),
        }
    )
    return jsonify(score=score(items), model_version=MODEL_VERSION)


@app.get("/items/<int:item_id>")
def item(item_id: int):
    mona.export({"item_id": item_id})
    return jsonify(id=item_id)


@app.get("/stream")
def stream():
    def rows():
        for n in range(3):
            mona.export({"rows_streamed": n + 1})
            yield f"row {n}\n"

    return app.response_class(rows(), mimetype="text/plain")


@app.get("/fail")
def fail():
    raise RuntimeError("model crashed")


@app.get("/health")
def health():
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
