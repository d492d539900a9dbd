"""Log output: plain lines by default, one JSON object per line on request."""

from __future__ import annotations

import json
import logging

from worker.logs import configure_logging


def test_json_lines_on_request(capsys):
    configure_logging("INFO", as_json=True)
    log = logging.getLogger("worker.test")
    log.info("poll %s done", "orders")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["message"] == "poll orders done" and lines[0]["level"] == "INFO"
    assert lines[1]["level"] == "ERROR" and "ValueError: boom" in lines[1]["exception"]
    configure_logging("INFO", as_json=False)


def test_plain_lines_and_level(capsys):
    configure_logging("WARNING", as_json=False)
    logging.getLogger("worker.test").info("hidden")
    logging.getLogger("worker.test").warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "WARNING worker.test: shown" in err
    configure_logging("INFO", as_json=False)
