"""Logging is configured once, at the edge: with `--log-format json` every line is JSON, the
records of libraries that use the standard library's logging (grpc's) included."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_json_logs_carry_stdlib_records_as_json_with_utc_timestamps():
    code = (
        "import logging, structlog\n"
        "from mmiobus.server import logs\n"
        "logs.configure('json', 'info')\n"
        "logging.getLogger('grpc._cython.cygrpc').warning('socket %s closed', 7)\n"
        "structlog.get_logger('mmiobus.test').info('device attached', device='uart0')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert [r["event"] for r in records] == ["socket 7 closed", "device attached"]
    assert records[0]["logger"] == "grpc._cython.cygrpc"
    assert records[0]["level"] == "warning"
    assert all(r["timestamp"].endswith("Z") for r in records)


def test_an_unknown_level_or_format_is_refused_by_name():
    from mmiobus.server import logs

    # Refused before anything is configured, so this process's logging stays as it was.
    for args, named in ((("json", "loud"), "'loud'"), (("xml", "info"), "'xml'")):
        with pytest.raises(ValueError, match=named):
            logs.configure(*args)
