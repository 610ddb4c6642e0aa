"""What the tests share (importable as ``support``: pyproject.toml puts ``tests`` on pytest's
path, and ``servers.process_env`` on the path of every process the tests start).

- ``servers``, ``devices``, ``rig``: real `mmiobus serve` and `mmiobus device run` processes
  (the ``machine_server`` and ``machine_rig`` fixtures in conftest.py hand out their factories);
  ``command_line``: the ``mmiobus`` command run to the end or in the background.
- ``machines``: machine descriptions as YAML text; ``spots``: memory handed out one per test.
- ``wait``: ``wait_for``, the one way to wait for a condition.
- ``stubs``, ``raw_device``: the wire itself (generated stubs, a device spoken from the test).
- ``trace_stream``, ``topology_watch``, ``flat_views``: Trace and WatchTopology streams and the
  flat views they are checked against.
- ``dma_engine``, ``timer``: the example models' registers as the tests drive them.
- ``models``: device classes written for the tests.
- ``reference``, ``mtree_compare``: the memory model's reference and QEMU's `info mtree` text.
- ``words``, ``ports``: little-endian words, free ports.
"""
