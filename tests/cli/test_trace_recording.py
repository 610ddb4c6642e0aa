"""`mmiobus trace` as a recorder next to the commands that make accesses: `--out FILE` keeps an
earlier recording until the new one has started, and `--requester-id N` on the access commands
makes the accesses that `trace --initiator client:N` selects (the README's example).

The trace runs as the installed script (a subprocess); the accesses are made in this process
(``main(argv)``).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from support.command_line import command_env
from support.ports import free_port
from support.servers import MMIOBUS, ServerFactory, ServerProcess
from support.trace_stream import joined
from support.wait import TIMEOUT, wait_for


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(None, "--log-format", "json")


class Trace:
    """`mmiobus trace ARGS` in the background; returns once the server has subscribed it."""

    def __init__(self, server: ServerProcess, *args: str) -> None:
        before = joined(server)
        self.proc = subprocess.Popen(
            [MMIOBUS, "trace", "-s", server.tcp, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=command_env(),
        )
        wait_for(
            lambda: joined(server) > before or self.proc.poll() is not None,
            message="`mmiobus trace` never subscribed",
        )
        assert self.proc.poll() is None, self.proc.communicate()

    def finish(self) -> str:
        out, err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, err
        return out


# -- --requester-id ------------------------------------------------------------------------------


def test_requester_id_makes_the_accesses_trace_initiator_selects(mmiobus, server, tmp_path):
    """`trace --initiator client:7` shows the accesses of every access command run with
    `--requester-id 7` (write, read, load, fill, dump), as client:7, and none of another
    requester's."""
    image = tmp_path / "img.bin"
    image.write_bytes(b"\x11" * 8)
    trace = Trace(server, "--initiator", "client:7", "--format", "jsonl", "--count", "5")
    s = ["-s", server.tcp]
    mmiobus("write", "--requester-id", "8", "0x2000", "2a", *s).text()  # not client:7
    mmiobus("write", "--requester-id", "7", "0x2000", "2a", *s).text()
    mmiobus("read", "--requester-id", "7", "0x2000", "1", *s).text()
    mmiobus("load", "--requester-id", "7", str(image), "0x2100", *s).text()
    mmiobus("fill", "--requester-id", "7", "0x2200", "4", "00", *s).text()
    mmiobus("dump", "--requester-id", "7", "0x2100", "8", str(tmp_path / "o.bin"), *s).text()
    records = [json.loads(line) for line in trace.finish().splitlines()]
    assert [(r["addr"], r["dir"]) for r in records] == [
        (0x2000, "write"), (0x2000, "read"), (0x2100, "write"), (0x2200, "write"),
        (0x2100, "read"),
    ]  # fmt: skip
    assert {(r["initiator"], r["requester_id"]) for r in records} == {("client", 7)}


def test_text_trace_names_the_requester(mmiobus, server):
    trace = Trace(server, "--initiator", "client:9", "--count", "1")
    mmiobus("write", "--requester-id", "9", "0x2300", "2a", "-s", server.tcp).text()
    assert " client:9 " in trace.finish()


@pytest.mark.parametrize("value", ["65536", "-1", "seven"])
def test_a_requester_id_outside_16_bits_is_a_usage_error(mmiobus, value):
    out = mmiobus("write", "--requester-id", value, "0x2000", "2a", "-s", "127.0.0.1:1")
    assert out.returncode == 2
    [line] = out.error_lines()
    assert value in line


# -- --out FILE ---------------------------------------------------------------------------------


def _stray(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_out_keeps_an_earlier_recording_when_the_bus_cannot_be_reached(mmiobus, tmp_path):
    """`trace --out FILE` against a bus that does not answer: exit 1, one line, and FILE (an
    earlier recording) is as it was, with nothing left beside it."""
    path = tmp_path / "run.jsonl"
    path.write_text('{"seq": 1}\n')
    out = mmiobus("trace", "--out", str(path), "--count", "1", "-s", f"127.0.0.1:{free_port()}")
    assert out.returncode == 1
    assert "no mmiobus server answers" in out.one_error_line()
    assert path.read_text() == '{"seq": 1}\n'
    assert _stray(tmp_path) == ["run.jsonl"]


def test_out_keeps_an_earlier_recording_when_the_bus_refuses_the_filters(mmiobus, server, tmp_path):
    path = tmp_path / "run.json"
    path.write_text("[]\n")
    out = mmiobus("trace", "--format", "chrome", "--out", str(path), "--space", "nowhere",
                  "--count", "1", "-s", server.tcp)  # fmt: skip
    assert out.returncode == 1
    assert "nowhere" in out.one_error_line()
    assert path.read_text() == "[]\n"
    assert _stray(tmp_path) == ["run.json"]


def test_out_replaces_the_file_once_the_recording_starts(mmiobus, server, tmp_path):
    """A trace that works replaces FILE with the new recording (a plain file, readable like
    any other)."""
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")
    trace = Trace(server, "--range", "0x2400+4", "--format", "jsonl", "--out", str(path),
                  "--count", "1")  # fmt: skip
    mmiobus("write", "0x2400", "2a", "-s", server.tcp).text()
    trace.finish()
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["addr"], record["data"]) == (0x2400, "2a")
    assert _stray(tmp_path) == ["run.jsonl"]
    assert path.stat().st_mode & 0o044  # not private, as mkstemp would leave it


def test_out_to_a_folder_that_does_not_exist_is_one_line(mmiobus, tmp_path):
    out = mmiobus("trace", "--out", str(tmp_path / "no" / "run.jsonl"), "-s", "127.0.0.1:1")
    assert out.returncode == 1
    assert "cannot write" in out.one_error_line()
