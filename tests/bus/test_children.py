"""Processes of this package start children (device processes, QEMU, simulators) while their
gRPC calls are in flight, on uvloop, whose children are forked. gRPC's fork handlers would
start its threads again in each child, and a child could die in one of them before it ran its
program; importing mmiobus turns the handlers off."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from support.servers import process_env

CHILDREN = 300  # with the handlers on, 2 to 5 in 100 such children died of SIGSEGV here

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, subprocess, sys
    import mmiobus  # first, as in every process of the package
    import grpc, uvloop
    from mmiobus.client import AsyncBus
    from mmiobus.server.app import BusServer
    from mmiobus.machine import Machine
    from mmiobus.server.config import ServerConfig

    async def main():
        server = BusServer(Machine.builtin("default"), ServerConfig())
        await server.start(["127.0.0.1:0"])
        busy = True

        async def traffic():
            async with AsyncBus(server.addresses[0]) as bus:
                while busy:
                    await asyncio.gather(*(bus.read(0x1000, 4) for _ in range(8)))

        calls = asyncio.ensure_future(traffic())
        died = 0
        for _ in range(int(sys.argv[1])):
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass",
                                                         stdin=subprocess.DEVNULL)
            if await child.wait() < 0:
                died += 1
        busy = False
        await calls
        await server.stop(0)
        print("children:", os.environ.get("GRPC_ENABLE_FORK_SUPPORT"), died)

    uvloop.run(main())
    """
)


def test_children_started_while_calls_are_in_flight_all_run():
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(CHILDREN)], capture_output=True,
                         text=True, timeout=300, env=process_env())  # fmt: skip
    assert out.returncode == 0, out.stderr
    [result] = [line for line in out.stdout.splitlines() if line.startswith("children:")]
    assert result.split() == ["children:", "false", "0"], out.stderr[-2000:]
