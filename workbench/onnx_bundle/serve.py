"""Serve this exported Workbench model over HTTP: python serve.py [--host 127.0.0.1] [--port 8000]

POST /predict with a JSON list of records (column -> value), or {"records": [...]}; the answer holds, per record,
the prediction, the class probabilities (classification) and what was wrong with the record. GET /health says
it is up; the OpenAPI docs are at /docs. Needs onnxruntime, numpy, fastapi and uvicorn (requirements.txt).
It has no authentication: keep it on 127.0.0.1 or put it behind a proxy that checks who calls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, HTTPException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import Bundle  # noqa: E402  (predict.py beside this file)

MAX_RECORDS = 100_000  # per request


def create_app(folder: Path) -> FastAPI:
    bundle = Bundle.load(folder)
    app = FastAPI(title=f"Workbench model predicting {bundle.spec['target']}")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/schema")
    def schema() -> dict[str, Any]:
        return {"columns": bundle.spec["columns"], "classes": bundle.classes, "task": bundle.spec["task"]}

    @app.post("/predict")
    def predict(body: Any = Body(...)) -> dict[str, Any]:
        records = body.get("records") if isinstance(body, dict) else body
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise HTTPException(422, "Send a JSON list of records (objects of column -> value), or {\"records\": [...]}.")
        if len(records) > MAX_RECORDS:
            raise HTTPException(413, f"At most {MAX_RECORDS:,} records per request.")
        missing = sorted({name for name in bundle.input_columns for record in records if name not in record})
        if missing:
            raise HTTPException(422, f"Records lack the column(s) {', '.join(map(repr, missing))}.")
        result = bundle.predict(records)
        answer: dict[str, Any] = {"predictions": result.predictions, "warnings": result.warnings}
        if result.probabilities is not None:
            answer["probabilities"] = [dict(zip(bundle.classes, map(float, row), strict=True))
                                       for row in result.probabilities]
        return answer

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve this exported Workbench model over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(create_app(Path(__file__).resolve().parent), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
