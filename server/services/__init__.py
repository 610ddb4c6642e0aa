"""The gRPC servicers: thin translation between ``mmiobus.v1`` messages and the server's core.

``rw`` (Rw, RwBatch, RwStream), ``tracing`` (Trace), ``topology`` (ApplyTopology, GetTopology,
Mtree, GetInfo, WatchTopology), ``devices`` (Attach, ListDevices, ResetDevice) and ``irqs``
(GetIrqs, WatchIrqs). ``status`` maps domain errors to status codes, in one place;
``registration`` adds the servicers to a gRPC server with tolerant request parsing.
"""
