"""Authentication benchmark: `Rw` (4-byte RAM reads, one in flight, over TCP loopback) on a bus
without authentication, on one that requires a token (`serve --token-file`; the client's
channel adds it to every call), and on one that adds TLS to the token. The client turns from
one bus to the next every few calls, so that each sees the same load (on a small shared machine
the rate drifts by more than the effect measured); a round's ratios are of rates measured in
that round, and figures are medians over rounds. Client and servers share this machine, so read
the ratios, not the absolute rates.

Each round starts its servers afresh, in the opposite order every other round. With the same
servers for every round, the one started second measured 2-3% slower than the first even when
both ran without authentication (on this 2-core machine a process's place on the cores is
decided when it starts, and it matters; see `mmiobus.affinity`): a bias as large as the effect
measured.

Target (issue "Nobody gets in uninvited..."): Rw with a token >= 0.95x of Rw without; with TLS,
the ratio is reported.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mmiobus.credentials import Credentials
from mmiobus.endpoints import open_channel
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from network import ADDR, DURATION, MMIOBUS, Row, _start, _stop, _verdict

ROUNDS = int(os.environ.get("MMIOBUS_BENCH_ROUNDS", "7"))
BLOCK = 20  # calls to one bus before turning to the next
TARGET = 0.95


def _certificates(folder: Path) -> tuple[Path, Path, Path] | None:
    """A CA and the bus's certificate for 127.0.0.1 (None without openssl)."""
    if shutil.which("openssl") is None:
        return None
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, csr, ext = (folder / f"bus.{x}" for x in ("crt", "key", "csr", "ext"))
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
        "-subj", "/CN=bench-ca")  # fmt: skip
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=bus")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


async def _round(stubs: dict[str, bus_pb2_grpc.BusStub], lat: dict[str, list[float]]) -> dict:
    """Blocks of BLOCK calls to each bus in turn for about DURATION seconds per bus: each sees
    the machine's load as the others do. Calls per second of each.

    The order is fair to the two buses compared: never two blocks to one bus in a row, and
    the bus without authentication and the one with a token each follow the other and the TLS
    bus (which goes last) equally often: off, token, TLS, token, off, TLS... What a block
    follows matters. With the order reversed every time (off, token, TLS, TLS, token, off,
    off...), the token's bus followed the TLS bus half the time and the other never did: 0.93x
    and 0.94x in two runs. With one fixed order, where the bus without authentication always
    follows the TLS bus: 0.97x and 0.96x. Controls in the reversed order, the middle bus
    without authentication too: 0.97x and 0.99x beside the TLS bus, 1.00x with three buses
    alike and no TLS."""
    request = pb.RwRequest(addr=ADDR, read=4)
    spent = dict.fromkeys(stubs, 0.0)
    order = list(stubs)
    end = time.perf_counter() + DURATION * len(stubs)
    blocks = 0
    while time.perf_counter() < end:
        for key in order:
            stub, times = stubs[key], lat[key]
            start = time.perf_counter()
            for _ in range(BLOCK):
                t = time.perf_counter()
                await stub.Rw(request)
                times.append(time.perf_counter() - t)
            spent[key] += time.perf_counter() - start
        if len(order) > 2:
            order[0], order[1] = order[1], order[0]
        blocks += 1
    return {key: blocks * BLOCK / spent[key] for key in stubs}


async def _measure(
    targets: dict[str, tuple[str, Credentials]],
    lat: dict[str, list[float]],
    rates: dict[str, list[float]],
) -> None:
    """One round against fresh servers: each bus's rate goes to ``rates``, its latencies to
    ``lat``."""
    channels = {k: open_channel(a, credentials=c) for k, (a, c) in targets.items()}
    stubs = {k: bus_pb2_grpc.BusStub(ch) for k, ch in channels.items()}
    try:
        for stub in stubs.values():
            for _ in range(BLOCK):
                await stub.Rw(pb.RwRequest(addr=ADDR, read=4))
        for key, rate in (await _round(stubs, lat)).items():
            rates[key].append(rate)
    finally:
        for ch in channels.values():
            await ch.close()


ROWS: dict[str, Row] = {}
NAMES = {"off": "Rw, no authentication", "token": "Rw, token", "tls": "Rw, token over TLS"}


def main() -> list[str]:
    lines = [
        f"auth: 4-byte RAM reads, Rw one in flight over TCP loopback, {ROUNDS} rounds",
        f"  {'row':<34}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        token = secrets.token_urlsafe(24)
        token_file = folder / "token"
        token_file.write_text(token)
        serve = [MMIOBUS, "serve", "--listen", "127.0.0.1:0"]
        pki = _certificates(folder)
        commands = {
            "off": (serve, Credentials()),
            "token": ([*serve, "--token-file", str(token_file)], Credentials(token)),
        }
        if pki is not None:
            ca, cert, key = pki
            commands["tls"] = (
                [*serve, "--token-file", str(token_file), "--tls-cert", str(cert),
                 "--tls-key", str(key)],
                Credentials(token, True, ca.read_bytes()),
            )  # fmt: skip
        lat: dict[str, list[float]] = {k: [] for k in commands}
        rates: dict[str, list[float]] = {k: [] for k in commands}
        try:
            import uvloop

            run = uvloop.run
        except ImportError:  # pragma: no cover
            run = asyncio.run
        for r in range(ROUNDS):
            # Fresh servers each round, started in the opposite order every other round (see
            # the module docstring).
            order = list(commands) if r % 2 == 0 else list(reversed(commands))
            procs = []
            try:
                targets = {}
                for name in order:
                    proc, [addr] = _start(commands[name][0], 1)
                    procs.append(proc)
                    targets[name] = (addr, commands[name][1])
                run(_measure({k: targets[k] for k in commands}, lat, rates))
            finally:
                for proc in procs:
                    _stop(proc)
    for key, times in lat.items():
        times.sort()
        ROWS[key] = Row(
            NAMES[key],
            statistics.median(rates[key]),
            times[len(times) // 2] * 1e6,
            times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6,
        )
    ratios = {
        k: [on / off for on, off in zip(v, rates["off"], strict=True)]
        for k, v in rates.items()
        if k != "off"
    }
    for key, row in ROWS.items():
        lines.append(f"  {NAMES[key]:<34}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}")
    lines.append("  ratios: median over rounds of (with / without, measured in the same round)")
    token_ratio = statistics.median(ratios["token"])
    lines.append(f"    {'Rw token / Rw without:':<35}{_verdict(token_ratio, TARGET)}")
    lines.append(f"      rounds: {' '.join(f'{r:.2f}' for r in ratios['token'])}")
    if "tls" in ratios:
        tls_ratio = statistics.median(ratios["tls"])
        lines.append(f"    {'Rw token+TLS / Rw without:':<35}{tls_ratio:.2f}x (reported)")
    else:
        lines.append("    Rw token+TLS: not measured (openssl is missing)")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
