"""The gRPC side of the server (imports grpc; the memory model does not)."""
