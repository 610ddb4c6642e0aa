"""RTL devices on the bus: a Verilog module serves a bus region through an APB bus-functional
model, simulated by Icarus Verilog under cocotb (``pip install mmiobus[rtl]``).

Two processes: the device (``mmiobus device rtl``: a device session, ``device``) and the
simulator (``vvp`` running cocotb, which imports ``simulation``), talking the line protocol of
``protocol``. ``build`` compiles the sources; ``apb`` is the bus-functional model.
"""
