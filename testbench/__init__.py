"""Test benches: one YAML file describes a co-simulation — the bus and its machine, device
processes and devices in the server, CPU front-ends with their firmware, recorders,
credentials and what must happen — and runs as processes (``mmiobus up``), as containers
(``mmiobus compose``) or under pytest (the ``mmiobus_*`` fixtures of ``pytest_plugin``).

``schema`` is the format, ``load`` reads a file into a checked ``Bench``, ``commands`` turns
it into command lines, ``kinds`` says what each kind of process is (the one table to extend).
"""
