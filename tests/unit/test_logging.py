"""Log lines: JSON in production with the request id, readable otherwise."""

from __future__ import annotations

import json
import logging

import pytest

from ordersmith.platform.logging import configure_logging, request_id_var


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_production_logs_are_json_lines_with_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", as_json=True)
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("ordersmith.test").info("placed order %s", 1001)
    finally:
        request_id_var.reset(token)
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert {key: entry[key] for key in ("level", "logger", "message", "request_id")} == {
        "level": "info",
        "logger": "ordersmith.test",
        "message": "placed order 1001",
        "request_id": "req-123",
    }
    assert entry["time"].endswith("+00:00")


def test_development_logs_are_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", as_json=False)
    logging.getLogger("ordersmith.test").warning("stock low")
    line = capsys.readouterr().err.strip()
    assert line.endswith("WARNING [-] ordersmith.test: stock low")
