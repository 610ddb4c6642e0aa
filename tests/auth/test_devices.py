"""What a device identity may do, with device processes: attach under the names it is given,
claim the regions it is given, register regions only in its areas, and make DMA only with the
read and write roles (else MEMTX_ACCESS_ERROR, as an IOMMU would answer)."""

from __future__ import annotations

import struct

import grpc
import pytest
from mmiobus.client import Bus
from mmiobus.credentials import Credentials
from mmiobus.memory.access import MemTxResult
from mmiobus.v1 import devices_pb2 as dpb
from support.auth import RawAttach, bearer, write_auth_file, write_token
from support.command_line import mmiobus
from support.devices import start_device

TIMER = "mmiobus.devices.models.timer:Timer"
MASTER = "support.models.bus_master:Master"
AREA = 0x2000_0000  # where the bus-master identities may register a region


@pytest.fixture(scope="module")
def bus(machine_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("devices")
    tokens: dict[str, str] = {}
    files: dict[str, str] = {}
    for name in ("timer", "master", "reader-master", "admin"):
        tokens[name], path = write_token(folder, name)
        files[name] = str(path)
    area = [{"address_space": "memory", "addr": AREA, "size": "64K"}]
    auth = write_auth_file(
        folder,
        [
            {"name": "timer", "token_file": files["timer"], "roles": ["device"],
             "device": {"names": ["timer0"], "claims": ["timer0"]}},
            {"name": "master", "token_file": files["master"], "roles": ["device", "read", "write"],
             "device": {"names": ["master*"], "claims": [], "register": area}},
            {"name": "reader-master", "token_file": files["reader-master"],
             "roles": ["device", "read"],
             "device": {"names": ["master*"], "claims": [], "register": area}},
            {"name": "admin", "token_file": files["admin"], "roles": ["all"]},
        ],
    )  # fmt: skip
    server = machine_server(None, "--auth", str(auth))
    return server, tokens, files


def _env(files, name):
    return {"MMIOBUS_TOKEN_FILE": files[name]}


def test_a_device_claims_the_region_its_identity_names(bus):
    server, tokens, files = bus
    device = start_device(TIMER, server.tcp, "--claim", "timer0", name="timer0",
                          env=_env(files, "timer"))  # fmt: skip
    try:
        with Bus(server.tcp, credentials=Credentials(tokens["admin"])) as admin:
            assert [d.regions for d in admin.devices() if d.name == "timer0"] == [["timer0"]]
    finally:
        device.stop()


def test_a_claim_outside_the_identity_is_refused_in_one_line(bus):
    server, _, files = bus
    out = mmiobus("device", "run", TIMER, "-s", server.tcp, "--name", "timer0", "--claim",
                  "uart0", "--token-file", files["timer"], "--no-reconnect")  # fmt: skip
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "may not claim region 'uart0'" in line and "'timer'" in line


def test_a_name_outside_the_identity_is_refused(bus):
    server, tokens, _ = bus
    with grpc.insecure_channel(server.tcp) as channel:
        device = RawAttach(channel, bearer(tokens["timer"]))
        try:
            with pytest.raises(grpc.RpcError) as refused:
                device.hello("uart0")
        finally:
            device.close()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not attach as device 'uart0'" in refused.value.details()


def test_a_registration_outside_the_identitys_areas_is_refused(bus):
    server, tokens, _ = bus
    with grpc.insecure_channel(server.tcp) as channel:
        device = RawAttach(channel, bearer(tokens["master"]))
        try:
            device.hello("master-far")
            for addr, code in ((AREA + 0x10000 - 0x1000, 0), (AREA + 0x10000, 7)):
                register = dpb.RegisterRegion(id=f"far{addr:x}", size=0x1000, addr=addr)
                device.send(region=dpb.RegionRequest(request_id=addr, register=register))
                reply = device.receive().region
                assert (reply.request_id, reply.code) == (addr, code), reply.message
            assert "may not register region" in reply.message
        finally:
            device.close()


def _dma(bus: Bus, base: int, write: bool) -> int:
    """Make the bus master at ``base`` write (or read) 4 bytes of RAM; its MemTxResult."""
    bus.write(base + 0x00, struct.pack("<Q", 0x1000))
    bus.write(base + 0x08, struct.pack("<Q", 0x5A5A5A5A))
    bus.write(base + 0x10, struct.pack("<I", 4))
    bus.write(base + 0x14, struct.pack("<I", 1 if write else 2))
    return struct.unpack("<I", bus.read(base + 0x18, 4))[0]


@pytest.mark.parametrize(
    ("identity", "read", "write"),
    [("master", MemTxResult.OK, MemTxResult.OK),
     ("reader-master", MemTxResult.OK, MemTxResult.ACCESS_ERROR)],
)  # fmt: skip
def test_dma_needs_the_read_and_write_roles(bus, identity, read, write):
    server, tokens, files = bus
    base = AREA + (0x1000 if identity == "master" else 0x2000)
    device = start_device(MASTER, server.tcp, "--at", hex(base), name=f"master-{identity}",
                          env=_env(files, identity))  # fmt: skip
    try:
        with Bus(server.tcp, credentials=Credentials(tokens["admin"])) as admin:
            assert _dma(admin, base, write=False) == read
            assert _dma(admin, base, write=True) == write
    finally:
        device.stop()
    if write != MemTxResult.OK:
        assert "device DMA refused" in server.log()
