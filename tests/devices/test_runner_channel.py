"""A device process notices a bus that vanished without closing its connection: its channel
pings (keepalive), as clients' channels do."""

from __future__ import annotations

import grpc
import pytest
from mmiobus.devices import DeviceRunner
from mmiobus.devices.models.timer import Timer
from mmiobus.endpoints import KEEPALIVE


async def test_device_runner_opens_its_channel_with_keepalive(monkeypatch):
    seen: list[dict[str, object]] = []
    real = grpc.aio.insecure_channel

    def spy(target, options=None, **kw):  # type: ignore[no-untyped-def]
        seen.append(dict(options or []))
        return real(target, options=options, **kw)

    monkeypatch.setattr(grpc.aio, "insecure_channel", spy)
    runner = DeviceRunner(Timer(), "127.0.0.1:1", name="t", claims=["timer0"], reconnect=False)
    with pytest.raises(grpc.RpcError):
        await runner.run()  # nothing listens on port 1
    assert seen, "the runner opened no channel"
    for key, value in KEEPALIVE:
        assert seen[0].get(key) == value
    assert seen[0]["grpc.keepalive_time_ms"] <= 30_000
