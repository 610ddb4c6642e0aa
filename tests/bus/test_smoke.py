from mmiobus.client import Bus


def test_write_then_read_over_both_transports(address):
    with Bus(address) as bus:
        bus.write(0x1000, b"\x01\x02\x03")
        assert bus.read(0x1000, 3) == b"\x01\x02\x03"
