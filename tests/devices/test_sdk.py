"""The device SDK: ``Device`` subclasses with sync and async handlers, ``RegisterFile`` rules,
failing handlers, reset, and the same class run out of process and inside the server.

One server serves every region; each rule test resets its device first, so tests do not depend
on each other. Expected values come from the register map in ``support.models.registers`` (reset
values, masks) and from what the test wrote.
"""

from __future__ import annotations

import random

import pytest
from mmiobus.client import MemTxAttrs, MemTxResult, NotFound, Read, Write
from mmiobus.devices import Register, RegisterFile
from support.command_line import mmiobus
from support.machines import device_machine, in_server, mmio
from support.models import target
from support.models.last_writer import R_REQUESTER, R_SECURE, R_VALUE, LastWriter
from support.models.registers import (
    BYTE,
    CTRL,
    FAIL,
    FLAGS,
    FLAGS_W1C,
    GAP,
    HALF,
    ID,
    KEY,
    MASKED,
    MASKED_BITS,
    REGS_SIZE,
    RESETS,
    SHADOW,
    WIDE,
    WRITES,
    AsyncRegs,
    Regs,
    register_file,
)
from support.rig import Rig, RigFactory
from support.words import le, u64

OK = MemTxResult.OK

# name -> (address, widest access the handlers receive)
REGIONS = {
    "regs_sync_remote": (0x10000000, 8),
    "regs_sync_local": (0x10001000, 8),
    "regs_async_remote": (0x10002000, 8),
    "regs_async_local": (0x10003000, 8),
    "regs_narrow_remote": (0x10004000, 2),
    "regs_narrow_local": (0x10005000, 2),
}
CLASSES = {"sync": target(Regs), "async": target(AsyncRegs), "narrow": target(Regs)}
REC = {"rec_remote": 0x10006000, "rec_local": 0x10007000}
ALL_REGS = list(REGIONS)
REMOTE = [n for n in REGIONS if n.endswith("_remote")]


def _kind(name: str) -> str:
    return name.split("_")[1]


@pytest.fixture(scope="module")
def sdk(machine_rig: RigFactory) -> Rig:
    regions, devices = [], []
    for name, (addr, widest) in REGIONS.items():
        cls = CLASSES[_kind(name)]
        device = name if name.endswith("_remote") else in_server(cls)
        regions.append(mmio(name, addr, REGS_SIZE, device, impl=(1, widest)))
        if name.endswith("_remote"):
            devices.append((cls, name, []))
    regions.append(mmio("rec_remote", REC["rec_remote"], 0x20, "rec_remote"))
    regions.append(mmio("rec_local", REC["rec_local"], 0x20, in_server(target(LastWriter))))
    devices.append((target(LastWriter), "rec_remote", []))
    return machine_rig(device_machine(regions), devices)


class Dev:
    """One Regs device on the bus: reads and writes that must succeed."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name = rig, name
        self.base, self.widest = REGIONS[name]

    def read(self, offset: int, size: int) -> int:
        r = self.rig.bus.read(self.base + offset, size, check=False)
        assert r.result == OK, (self.name, hex(offset), size, r)
        return le(r.data)

    def write(self, offset: int, size: int, value: int) -> None:
        result = self.rig.bus.write(self.base + offset, value.to_bytes(size, "little"), check=False)
        assert result == OK, (self.name, hex(offset), size, result)

    def calls(self, size: int) -> int:
        """How many handler calls one access of ``size`` bytes becomes."""
        return max(1, size // self.widest)


@pytest.fixture(params=ALL_REGS)
def dev(request: pytest.FixtureRequest, sdk: Rig) -> Dev:
    """A Regs device (each mode and handler kind), freshly reset."""
    sdk.bus.reset_device(request.param)
    return Dev(sdk, request.param)


SIZES = {"ctrl": 4, "id": 4, "key": 4, "masked": 4, "flags": 4, "byte": 1, "half": 2}
SIZES |= {"shadow": 4, "writes": 4, "wide": 8}
OFFSETS = {"ctrl": CTRL, "id": ID, "key": KEY, "masked": MASKED, "flags": FLAGS}
OFFSETS |= {"byte": BYTE, "half": HALF, "shadow": SHADOW, "writes": WRITES, "wide": WIDE}
WRITABLE = ["ctrl", "key", "masked", "flags", "byte", "half", "wide"]


def _snapshot(d: Dev) -> dict[str, int]:
    return {name: d.read(OFFSETS[name], SIZES[name]) for name in SIZES}


# -- RegisterFile, in this process -------------------------------------------------------------


class _Owner:
    registers: RegisterFile


def _file() -> RegisterFile:
    owner = _Owner()
    owner.registers = register_file(owner)
    return owner.registers


def test_register_file_starts_at_reset_values():
    """A new RegisterFile holds each register's reset value."""
    regs = _file()
    for name, value in RESETS.items():
        assert regs[name] == value


def test_register_file_reset_restores_reset_values():
    """reset() puts back every reset value after writes and direct updates."""
    regs = _file()
    for name in WRITABLE:
        regs.write(OFFSETS[name], SIZES[name], 0)
    regs["id"] = 0
    regs.reset()
    for name, value in RESETS.items():
        assert regs[name] == value


def test_register_file_rejects_overlapping_registers():
    """Two registers sharing a byte are refused."""
    with pytest.raises(ValueError, match="overlap"):
        RegisterFile(Register("a", 0, size=4), Register("b", 2, size=2))


def test_register_rejects_unknown_access_kind():
    """access must be rw, ro or wo."""
    with pytest.raises(ValueError, match="access"):
        Register("a", 0, access="rx")


def test_register_rejects_odd_sizes():
    """A register is 1, 2, 4 or 8 bytes."""
    with pytest.raises(ValueError, match="size"):
        Register("a", 0, size=3)


def test_register_file_direct_update_bypasses_rules_and_truncates():
    """regs[name] = v sets a read-only register too, cut to the register's width."""
    regs = _file()
    regs["id"] = 0x1_2345_6789
    assert regs["id"] == 0x2345_6789
    regs["byte"] = 0x1FF
    assert regs["byte"] == 0xFF


def test_register_file_on_read_computes_the_value():
    """on_read supplies the value a read sees (bytes of it, for a partial read)."""
    values = iter([0x11223344, 0x55667788])
    regs = RegisterFile(Register("live", 0, on_read=lambda: next(values)))
    assert regs.read(0, 4) == 0x11223344
    assert regs.read(1, 2) == 0x6677


def test_register_file_on_write_sees_old_and_new_after_rules():
    """on_write(old, new) gets the value before and after the rules (mask) were applied."""
    seen = []
    regs = RegisterFile(
        Register("r", 0, reset=0xF0, mask=0x0F, on_write=lambda o, n: seen.append((o, n)))
    )
    regs.write(0, 4, 0xFFFF)
    assert seen == [(0xF0, 0xFF)]


def test_register_file_read_only_write_runs_no_side_effect():
    """A write to a read-only register neither changes it nor calls on_write."""
    seen = []
    regs = RegisterFile(
        Register("r", 0, reset=7, access="ro", on_write=lambda o, n: seen.append(n))
    )
    regs.write(0, 4, 0)
    assert regs["r"] == 7 and seen == []


def test_register_file_w1c_only_clears_bits_in_bytes_written():
    """A one-byte write to a w1c register clears bits only in that byte."""
    regs = RegisterFile(Register("s", 0, reset=0xFFFF, w1c=0xFFFF))
    regs.write(1, 1, 0xFF)
    assert regs["s"] == 0x00FF


# -- the rules, through the bus, for every mode ------------------------------------------------


def test_reset_values_read_back(dev: Dev):
    """After a reset every register reads its reset value (write-only ones read 0)."""
    got = _snapshot(dev)
    assert got == {n: (0 if n == "key" else RESETS[n]) for n in SIZES}


def test_rw_registers_read_back_what_was_written(dev: Dev):
    """A read/write register reads back the value written, at its own width."""
    values = {"ctrl": 0xA1B2C3D4, "byte": 0x5C, "half": 0x1357, "wide": 0xFEDCBA9876543210}
    for name, value in values.items():
        dev.write(OFFSETS[name], SIZES[name], value)
    for name, value in values.items():
        assert dev.read(OFFSETS[name], SIZES[name]) == value


def test_read_only_register_ignores_writes(dev: Dev):
    """A write to a read-only register succeeds and changes nothing."""
    dev.write(ID, 4, ~RESETS["id"] & 0xFFFFFFFF)
    assert dev.read(ID, 4) == RESETS["id"]


def test_write_only_register_reads_zero(dev: Dev):
    """A write-only register reads 0, even after a write."""
    dev.write(KEY, 4, 0x600DF00D)
    assert dev.read(KEY, 4) == 0


def test_on_write_side_effect_sees_the_value_written(dev: Dev):
    """on_write of the write-only KEY copies the value into SHADOW."""
    dev.write(KEY, 4, 0x600DF00D)
    assert dev.read(SHADOW, 4) == 0x600DF00D


def test_on_write_runs_once_per_handler_call(dev: Dev):
    """Each write of CTRL runs its on_write once per handler call it became."""
    for value in (1, 2, 3):
        dev.write(CTRL, 4, value)
    assert dev.read(WRITES, 4) == 3 * dev.calls(4)


def test_mask_keeps_bits_outside_the_mask(dev: Dev):
    """Only the mask's bits of a register change on a write."""
    written = 0xFFFF_FFFF
    dev.write(MASKED, 4, written)
    expected = (RESETS["masked"] & ~MASKED_BITS) | (written & MASKED_BITS)
    assert dev.read(MASKED, 4) == expected


def test_w1c_bits_clear_on_one_and_keep_on_zero(dev: Dev):
    """Writing 1 clears a w1c bit, writing 0 keeps it; other bits take the value written."""
    old, written = RESETS["flags"], 0x0000_3A3A
    dev.write(FLAGS, 4, written)
    expected = (written & ~FLAGS_W1C) | (old & FLAGS_W1C & ~written)
    assert dev.read(FLAGS, 4) == expected


def test_partial_write_changes_only_its_bytes(dev: Dev):
    """A 1-byte write into CTRL and a 2-byte write into WIDE replace just those bytes."""
    dev.write(CTRL + 1, 1, 0x99)
    dev.write(WIDE + 4, 2, 0x7E7F)
    ctrl = bytearray(RESETS["ctrl"].to_bytes(4, "little"))
    ctrl[1] = 0x99
    wide = bytearray(RESETS["wide"].to_bytes(8, "little"))
    wide[4:6] = (0x7E7F).to_bytes(2, "little")
    assert dev.read(CTRL, 4) == le(ctrl)
    assert dev.read(WIDE, 8) == le(wide)


def test_partial_read_returns_bytes_of_the_register(dev: Dev):
    """Narrow reads inside a register give the matching bytes of its value."""
    wide = RESETS["wide"].to_bytes(8, "little")
    for size in (1, 2, 4):
        for offset in range(0, 8, size):
            assert dev.read(WIDE + offset, size) == le(wide[offset : offset + size])


def test_access_spanning_registers_reads_each_register(dev: Dev):
    """An 8-byte read covering several registers (and a hole) puts each register's bytes in
    place, with 0 where no register is."""
    assert dev.read(CTRL, 8) == RESETS["ctrl"] | RESETS["id"] << 32
    expected = RESETS["flags"] | RESETS["byte"] << 32 | RESETS["half"] << 48
    assert dev.read(FLAGS, 8) == expected


def test_access_spanning_registers_writes_each_register(dev: Dev):
    """An 8-byte write covering FLAGS, BYTE, a hole and HALF updates each by its own rules."""
    value = 0x1234_0056_0000_0F0F
    dev.write(FLAGS, 8, value)
    flags = value & 0xFFFFFFFF
    expected_flags = (flags & ~FLAGS_W1C) | (RESETS["flags"] & FLAGS_W1C & ~flags)
    assert dev.read(FLAGS, 4) == expected_flags
    assert dev.read(BYTE, 1) == (value >> 32) & 0xFF
    assert dev.read(HALF, 2) == value >> 48


def test_write_spanning_a_read_only_register_changes_only_the_writable_one(dev: Dev):
    """An 8-byte write over CTRL and the read-only ID changes CTRL only."""
    dev.write(CTRL, 8, 0x0102030405060708)
    assert dev.read(CTRL, 4) == 0x05060708
    assert dev.read(ID, 4) == RESETS["id"]


def test_unmapped_offsets_read_zero_and_ignore_writes(dev: Dev):
    """Offsets no register covers read 0; writes there succeed and change nothing."""
    dev.write(GAP, 8, 0xFFFF_FFFF_FFFF_FFFF)
    assert dev.read(GAP, 8) == 0


def test_raising_read_handler_answers_memtx_error(dev: Dev):
    """A read whose handler raises completes with MEMTX_ERROR."""
    r = dev.rig.bus.read(dev.base + FAIL, 4, check=False)
    assert r.result == MemTxResult.ERROR


def test_raising_write_handler_answers_memtx_error(dev: Dev):
    """A write whose handler raises completes with MEMTX_ERROR."""
    assert dev.rig.bus.write(dev.base + FAIL, b"\1\2\3\4", check=False) == MemTxResult.ERROR


def test_device_keeps_serving_after_a_handler_raised(dev: Dev):
    """After handlers raised, the same device still answers, with its state intact."""
    dev.write(CTRL, 4, 0x0BADCAFE)
    for _ in range(3):
        dev.rig.bus.read(dev.base + FAIL, 8, check=False)
        dev.rig.bus.write(dev.base + FAIL, bytes(8), check=False)
    assert dev.read(CTRL, 4) == 0x0BADCAFE
    assert dev.name in [d.name for d in dev.rig.bus.devices()]


def test_reset_device_restores_reset_values(dev: Dev):
    """Bus.reset_device brings every register back to its reset value."""
    before = _snapshot(dev)
    for name in WRITABLE:
        dev.write(OFFSETS[name], SIZES[name], 0x5A5A5A5A5A5A5A5A & ((1 << 8 * SIZES[name]) - 1))
    assert _snapshot(dev) != before
    dev.rig.bus.reset_device(dev.name)
    assert _snapshot(dev) == before


def test_cli_reset_device_restores_reset_values(dev: Dev):
    """`mmiobus reset-device NAME` brings every register back and says so."""
    before = _snapshot(dev)
    for name in WRITABLE:
        dev.write(OFFSETS[name], SIZES[name], 0)
    assert _snapshot(dev) != before
    out = mmiobus("reset-device", dev.name, "--server", dev.rig.address)
    assert out.returncode == 0, out.stderr
    assert dev.name in out.stdout
    assert _snapshot(dev) == before


# -- one class, two modes -------------------------------------------------------------------------


def _sequence(base: int) -> list[Read | Write]:
    """Every aligned access of every size over the whole region, each a write then a read,
    with values from a fixed seed."""
    rng = random.Random(20240611)
    out: list[Read | Write] = []
    for size in (1, 2, 4, 8):
        for offset in range(0, REGS_SIZE, size):
            out.append(Write(base + offset, rng.getrandbits(8 * size).to_bytes(size, "little")))
            out.append(Read(base + offset, size))
            out.append(Read(base + WRITES, 4))
    return out


def _run(rig: Rig, name: str) -> list[object]:
    rig.bus.reset_device(name)
    base = REGIONS[name][0]
    results = rig.bus.batch(_sequence(base), check=False)
    return [*results, *[rig.bus.read(base + o, 8, check=False) for o in range(0, 0x30, 8)]]


@pytest.mark.parametrize("kind", ["sync", "async", "narrow"])
def test_in_process_and_out_of_process_give_identical_results(sdk: Rig, kind: str):
    """The same class run by a device process and inside the server answers the same sequence
    of accesses (values and results) identically."""
    remote = _run(sdk, f"regs_{kind}_remote")
    local = _run(sdk, f"regs_{kind}_local")
    assert any(getattr(r, "result", r) for r in remote)  # the sequence reaches the raising range
    assert remote == local


def test_sync_and_async_handlers_give_identical_results(sdk: Rig):
    """A device with async handlers answers exactly as the same device with plain ones."""
    assert _run(sdk, "regs_async_remote") == _run(sdk, "regs_sync_remote")


@pytest.mark.parametrize("name", list(REC))
def test_handler_sees_the_initiators_attributes(sdk: Rig, name: str):
    """Inside a handler, access_attrs are the attributes the client sent."""
    base = REC[name]
    attrs = MemTxAttrs(requester_id=0x1234, secure=True)
    sdk.bus.write(base + R_VALUE, u64(0x77), attrs=attrs)
    assert le(sdk.bus.read(base + R_REQUESTER, 8)) == 0x1234
    assert le(sdk.bus.read(base + R_SECURE, 8)) == 1
    assert le(sdk.bus.read(base + R_VALUE, 8)) == 0x77


# -- devices, reset, errors -----------------------------------------------------------------------


def test_devices_lists_out_of_process_and_in_process_devices(sdk: Rig):
    """ListDevices names every device, with its region, where it runs and its peer."""
    devices = {d.name: d for d in sdk.bus.devices()}
    assert set(devices) == {*REGIONS, *REC}
    for name, d in devices.items():
        assert list(d.regions) == [name]
        assert d.in_process == name.endswith("_local")
        assert bool(d.peer) == name.endswith("_remote")


@pytest.mark.parametrize("name", ["regs_sync_remote", "regs_sync_local"])
def test_devices_counts_forwarded_accesses(sdk: Rig, name: str):
    """A device's `accesses` counter grows by one per access it was asked to serve."""
    base = REGIONS[name][0]

    def count() -> int:
        return next(d.accesses for d in sdk.bus.devices() if d.name == name)

    before = count()
    for i in range(5):
        sdk.bus.write(base + CTRL, i.to_bytes(4, "little"))
        sdk.bus.read(base + CTRL, 4)
    assert count() - before == 10


def test_cli_devices_lists_each_device_once(sdk: Rig):
    """`mmiobus devices` prints one line per device, naming it and its region."""
    out = mmiobus("devices", "--server", sdk.address)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted({*REGIONS, *REC})
    for line in lines:
        name = line.split()[0]
        assert ("in the server" in line) == name.endswith("_local")


def test_reset_of_an_unknown_device_is_not_found(sdk: Rig):
    """Bus.reset_device of a name no device has raises NotFound."""
    with pytest.raises(NotFound, match="no-such-device"):
        sdk.bus.reset_device("no-such-device")


def test_cli_reset_of_an_unknown_device_fails(sdk: Rig):
    """`mmiobus reset-device` of an unknown name exits 1 with a one-line error naming it."""
    out = mmiobus("reset-device", "no-such-device", "--server", sdk.address)
    assert out.returncode == 1
    assert "no-such-device" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_device_run_with_an_unknown_class_fails(sdk: Rig):
    """`mmiobus device run` of a class that does not exist exits 1 naming it."""
    out = mmiobus(
        "device",
        "run",
        "support.models.registers:NoSuchClass",
        "--server",
        sdk.address,
        "--claim",
        "regs_sync_remote",
    )
    assert out.returncode == 1
    assert "NoSuchClass" in out.stderr


def test_device_run_with_bad_constructor_arguments_fails(sdk: Rig):
    """`mmiobus device run --arg` with an argument the class does not take exits 1."""
    out = mmiobus(
        "device",
        "run",
        "mmiobus.devices.models.scratch:ScratchRam",
        "--server",
        sdk.address,
        "--claim",
        "regs_sync_remote",
        "--arg",
        "colour=blue",
    )
    assert out.returncode == 1
    assert "colour" in out.stderr
