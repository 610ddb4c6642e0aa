"""The mmiobus server: one machine, its devices, interrupt lines and trace subscribers, served
over gRPC.

``core`` holds the bus's state (built once, shared by the services); ``devices`` the device
domain (the registry, remote sessions, devices running in the server); ``services`` the thin
gRPC servicers; ``app`` starts and stops it all. The memory model it serves is
``mmiobus.memory``; machine descriptions are ``mmiobus.machine``.
"""
