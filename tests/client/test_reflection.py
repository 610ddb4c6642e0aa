"""gRPC server reflection as clients find it: both versions of the protocol, v1 (what grpcurl
asks first) and v1alpha, list the same services and describe the bus's contract and
themselves."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from mmiobus.v1 import bus_pb2
from support.servers import ServerFactory, ServerProcess

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
# The two versions have the same messages, so v1alpha's classes encode v1's requests.
REQUEST, RESPONSE = reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(None)


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.tcp) as ch:
        yield ch


def ask(channel: grpc.Channel, service: str, *requests: reflection_pb2.ServerReflectionRequest):
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=REQUEST.SerializeToString,
        response_deserializer=RESPONSE.FromString,
    )
    return list(call(iter(requests), timeout=10))


@pytest.mark.parametrize("service", [V1, V1ALPHA])
def test_both_versions_list_the_services(channel, service):
    [reply] = ask(channel, service, REQUEST(list_services=""))
    names = {s.name for s in reply.list_services_response.service}
    assert {"mmiobus.v1.Bus", "mmiobus.v1.Devices", "grpc.health.v1.Health", V1, V1ALPHA} <= names


@pytest.mark.parametrize("service", [V1, V1ALPHA])
@pytest.mark.parametrize(
    "symbol, filename",
    [("mmiobus.v1.Bus", bus_pb2.DESCRIPTOR.name), (V1, "grpc/reflection/v1/reflection.proto")],
)
def test_both_versions_describe_the_bus_and_reflection_v1(channel, service, symbol, filename):
    [reply] = ask(channel, service, REQUEST(file_containing_symbol=symbol))
    assert reply.WhichOneof("message_response") == "file_descriptor_response", reply
    files = reply.file_descriptor_response.file_descriptor_proto
    assert filename in [descriptor_pb2.FileDescriptorProto.FromString(f).name for f in files]


def test_the_v1_service_described_has_v1_messages(channel):
    """The reflection client builds the v1 service from what the server says: its method
    takes and returns grpc.reflection.v1 messages."""
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName(V1).methods_by_name["ServerReflectionInfo"]
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert method.output_type.full_name == "grpc.reflection.v1.ServerReflectionResponse"
    assert [f.name for f in method.input_type.fields] == [f.name for f in REQUEST.DESCRIPTOR.fields]
