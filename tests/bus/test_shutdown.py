"""Stopping `mmiobus serve`: SIGTERM and SIGINT stop it gracefully with exit status 0, clients
with accesses in flight get complete answers or a clean failure, and what the server prints."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import termios
from pathlib import Path

import grpc
import pytest
from mmiobus.client import Bus, ServerUnavailable
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import MMIOBUS, ServerProcess, start_server
from support.wait import wait_for

TIMEOUT = 30  # seconds; only to turn a hang into a failure
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]

# A client process: batches of 2000 writes then 2000 reads of a pattern that changes every
# batch, checking every read, until a call fails. Prints "started" after its first batch, then
# "FAILED <exception> <status>" (or "CORRUPT" if a read returned wrong data).
BATCH_CLIENT = r"""
import sys
from mmiobus.client import Bus, Read, RpcFailure, Write

n = 0
try:
    with Bus(sys.argv[1], timeout=30) as bus:
        while True:
            word = bytes([n % 251]) * 8
            writes = [Write(0x50000 + 8 * i, word) for i in range(2000)]
            results = bus.batch([*writes, *(Read(w.addr, 8) for w in writes)])
            if results != [None] * 2000 + [word] * 2000:
                print("CORRUPT", n, flush=True)
                sys.exit(3)
            n += 1
            if n == 1:
                print("started", flush=True)
except RpcFailure as e:
    print("FAILED", type(e).__name__, e.code, flush=True)
"""


def terminate(srv: ServerProcess, sig: int) -> int:
    """Signal the server and wait for it to exit (its files stay until ``srv.stop()``)."""
    srv.proc.send_signal(sig)
    try:
        return srv.proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()
        raise AssertionError(f"server did not exit within {TIMEOUT}s:\n{srv.log()}") from None


@pytest.fixture
def fresh_server():
    """A server of its own for a test that stops it; cleaned up whatever happens."""
    servers: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        servers.append(start_server(*args))
        return servers[-1]

    yield start
    for srv in servers:
        if srv.proc.poll() is None:
            srv.proc.kill()
        srv.stop()


# -- exit status -----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_stops_the_server_with_exit_status_zero(fresh_server, sig):
    """A serving server stops on the signal and exits with status 0."""
    srv = fresh_server()
    with Bus(srv.tcp) as bus:
        bus.read(0x1000, 4)
    assert terminate(srv, sig) == 0, srv.log()


@pytest.mark.parametrize("sig", SIGNALS)
def test_idle_connected_client_does_not_delay_exit(fresh_server, sig):
    """A client that stays connected but idle does not keep the server from exiting with 0."""
    srv = fresh_server()
    with Bus(srv.unix) as bus:
        bus.read(0x1000, 4)
        assert terminate(srv, sig) == 0, srv.log()


def _pipe_bytes(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


@pytest.mark.skipif(sys.platform != "linux", reason="sizes a pipe with Linux's F_SETPIPE_SZ")
@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_right_after_a_listening_line_exits_zero(tmp_path, sig):
    """Once the server has said where it listens, a signal stops it gracefully.

    The server's stdout is a one-page pipe that only has room left for its first line, so the
    server is held in the middle of announcing its addresses when the signal arrives.
    """
    first, second = tmp_path / "first.sock", tmp_path / "second.sock"
    line = f"mmiobus: listening on unix:{first}\n".encode()
    out, into = os.pipe()
    try:
        fcntl.fcntl(into, fcntl.F_SETPIPE_SZ, 4096)
        capacity = fcntl.fcntl(into, fcntl.F_GETPIPE_SZ)
        os.write(into, b"#" * (capacity - len(line)))
        with open(tmp_path / "server.log", "w") as log:
            proc = subprocess.Popen(
                [MMIOBUS, "serve", "--listen", f"unix:{first}", "--listen", f"unix:{second}"],
                stdout=into,
                stderr=log,
            )
        os.close(into)
        into = -1
        try:

            def first_line_in() -> bool:
                if _pipe_bytes(out) >= capacity:
                    return True
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                return False

            wait_for(first_line_in, TIMEOUT, message="the server never printed where it listens")
            proc.send_signal(sig)
            while select.select([out], [], [], TIMEOUT)[0] and os.read(out, 65536):
                pass  # let it finish printing, until it exits and closes its end
            status = proc.wait(TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        os.close(out)
        if into >= 0:
            os.close(into)
    assert status == 0, (tmp_path / "server.log").read_text()


# -- accesses in flight ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", SIGNALS)
def test_batches_in_flight_get_correct_answers_or_a_clean_failure(fresh_server, sig):
    """A client process running large batches back to back when the signal arrives sees every
    batch answered correctly until a call fails with a client RpcFailure; the server exits 0
    and the client exits without hanging."""
    srv = fresh_server()
    client = subprocess.Popen(
        [sys.executable, "-c", BATCH_CLIENT, srv.tcp],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == "started\n", client.stderr.read()  # type: ignore[union-attr]
        assert terminate(srv, sig) == 0, srv.log()
        out, err = client.communicate(timeout=TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    assert out.startswith("FAILED "), out + err


@pytest.mark.parametrize("sig", SIGNALS)
async def test_busy_stream_gets_correct_answers_or_a_clean_failure(fresh_server, sig):
    """A raw stream busy with messages of writes and reads when the signal arrives gets correct
    replies until the call ends with a gRPC status (no hang, no wrong data); the server cuts it
    after its grace period and exits 0."""
    srv = fresh_server("--grace", "0.5")
    answered = asyncio.Event()

    async def busy(call) -> int:
        """Runs until the stream fails; returns how many messages were answered correctly."""
        n = 0
        try:
            while True:
                words = [(n * 100 + i).to_bytes(8, "little") for i in range(100)]
                accesses = [
                    pb.RwRequest(id=i, addr=0x60000 + 8 * i, write=w) for i, w in enumerate(words)
                ]
                accesses += [
                    pb.RwRequest(id=100 + i, addr=0x60000 + 8 * i, read=8) for i in range(100)
                ]
                await call.write(pb.RwStreamRequest(accesses=accesses))
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    return n
                assert [r.id for r in reply.results] == [a.id for a in accesses]
                assert [r.data for r in reply.results[100:]] == words
                n += 1
                answered.set()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return n  # the call has ended; its status is checked below

    async with grpc.aio.insecure_channel(srv.unix) as channel:
        call = bus_pb2_grpc.BusStub(channel).RwStream(timeout=TIMEOUT)
        task = asyncio.create_task(busy(call))
        await asyncio.wait_for(answered.wait(), TIMEOUT)
        status = await asyncio.to_thread(terminate, srv, sig)
        answered_messages = await asyncio.wait_for(task, TIMEOUT)
        code = await asyncio.wait_for(call.code(), TIMEOUT)
    assert status == 0, srv.log()
    assert answered_messages > 0
    assert code != grpc.StatusCode.OK


# -- after shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_calls_after_shutdown_raise_server_unavailable(fresh_server, transport):
    """Once the server has stopped, a connected client's next call and a new connection both
    raise ServerUnavailable."""
    srv = fresh_server()
    address = srv.tcp if transport == "tcp" else srv.unix
    with Bus(address, timeout=TIMEOUT) as bus:
        bus.read(0x1000, 1)
        assert terminate(srv, signal.SIGTERM) == 0, srv.log()
        with pytest.raises(ServerUnavailable):
            bus.read(0x1000, 1)
    with pytest.raises(ServerUnavailable):
        Bus(address, timeout=TIMEOUT)


def test_unix_socket_file_is_removed_on_shutdown(fresh_server):
    """The unix socket the server listened on is gone once it has exited."""
    srv = fresh_server()
    path = Path(srv.unix.removeprefix("unix:"))
    with Bus(srv.unix) as bus:
        bus.read(0x1000, 1)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert terminate(srv, signal.SIGTERM) == 0, srv.log()
    assert not path.exists()


# -- output ----------------------------------------------------------------------------------


def test_stdout_says_where_it_listens_and_nothing_else(tmp_path):
    """Standard output has one `mmiobus: listening on ADDR` line per --listen, in order, each
    ADDR reachable (a TCP port chosen for port 0, the socket's path), and nothing more."""
    sock = tmp_path / "bus.sock"
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(
            [MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--listen", f"unix:{sock}"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        found = [re.fullmatch(r"mmiobus: listening on (\S+)\n", line) for line in lines]
        assert all(found), lines
        tcp, unix = (m.group(1) for m in found)  # type: ignore[union-attr]
        assert re.fullmatch(r"127\.0\.0\.1:[1-9][0-9]*", tcp)
        assert unix == f"unix:{sock}"
        for address in (tcp, unix):
            with Bus(address, timeout=TIMEOUT) as bus:
                bus.write(0x1000, b"\x01")
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert rest == ""


def test_json_log_format_writes_json_lines_with_an_event(fresh_server):
    """With --log-format json, every line on standard error is a JSON object with an "event"."""
    srv = fresh_server("--log-format", "json")
    with Bus(srv.tcp) as bus:
        bus.write(0x1000, b"\x01")
        bus.read(0x20000000, 4, check=False)
    assert terminate(srv, signal.SIGTERM) == 0, srv.log()
    lines = [line for line in srv.log().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and "event" in r for r in records), lines
