from mmiobus.memory import MemorySystem, MemTxResult


def test_ram_write_then_read_round_trips():
    sys_ = MemorySystem()
    root = sys_.container("system", 2**64)
    root.add_subregion(0x1000, sys_.ram("ram", 0x1000))
    memory = sys_.address_space("memory", root)
    assert memory.write(0x1010, b"\x01\x02") == MemTxResult.OK
    assert memory.read(0x100F, 4) == (b"\x00\x01\x02\x00", MemTxResult.OK)
