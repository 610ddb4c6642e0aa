"""QEMU as a peer of the bus.

* QEMU's device models as bus devices (``mmiobus device qemu``): a stopped QEMU machine
  driven over qtest serves bus regions from windows of its address space; its interrupt
  controller's inputs, intercepted, become bus interrupt lines (``device``, ``qtest``,
  ``launch``, ``machine_view``).
* A QEMU PC guest as an initiator (``mmiobus pci-proxy``): QEMU 7.2's multi-process proxy
  device presents a PCI function whose BAR accesses are forwarded to the bus (``mpqemu``,
  ``pci_config``, ``pci_proxy``).
"""
