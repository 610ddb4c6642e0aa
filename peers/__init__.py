"""What the bus's peers share: QEMU's device models (``mmiobus.qemu``) and RTL simulations
(``mmiobus.rtl``) run as child processes tied to a device session's lifetime (``child``),
answer over a line protocol (``lines``), and serve bus regions from windows of their own
address space (``windows``, ``session``)."""
