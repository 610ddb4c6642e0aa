"""Standard gRPC health checking and server reflection, so that `grpcurl` and load balancers
work against `mmiobus serve`."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from mmiobus.v1 import bus_pb2

BUS = bus_pb2.DESCRIPTOR.services_by_name["Bus"]


@pytest.fixture
def channel(address):
    with grpc.insecure_channel(address) as ch:
        yield ch


# -- health ----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", BUS.full_name])
def test_health_check_answers_serving(channel, service):
    """The server as a whole ("") and the Bus service report SERVING."""
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_of_unknown_service_is_not_found(channel):
    """Asking about a service the server does not have is NOT_FOUND, as the protocol says."""
    with pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_watch_reports_serving(channel):
    """A Watch on the Bus service starts with SERVING."""
    call = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=BUS.full_name), timeout=10
    )
    try:
        assert next(call).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        call.cancel()


# -- reflection ------------------------------------------------------------------------------


def test_reflection_lists_bus_health_and_reflection_services(channel):
    """Reflection lists mmiobus.v1.Bus, grpc.health.v1.Health and the reflection service."""
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    reflection_service = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
    assert {
        BUS.full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection_service.full_name,
    } <= services


def test_reflection_describes_rw_request_as_the_contract_does(channel):
    """The RwRequest the server describes has the fields of the committed contract (names,
    numbers, the `op` oneof)."""
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    described = pool.FindMessageTypeByName("mmiobus.v1.RwRequest")
    local = bus_pb2.RwRequest.DESCRIPTOR
    assert [(f.name, f.number, f.type) for f in described.fields] == [
        (f.name, f.number, f.type) for f in local.fields
    ]
    assert [f.name for f in described.oneofs_by_name["op"].fields] == [
        f.name for f in local.oneofs_by_name["op"].fields
    ]


def test_reflection_describes_the_bus_methods(channel):
    """The Bus service the server describes has the contract's methods and message types."""
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    described = pool.FindServiceByName(BUS.full_name)

    def shape(service):
        return [(m.name, m.input_type.full_name, m.output_type.full_name) for m in service.methods]

    assert shape(described) == shape(BUS)


def test_reflection_finds_the_file_defining_a_symbol(channel):
    """Asking which file defines mmiobus.v1.Bus answers with the contract's file."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=BUS.full_name)
    reply = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert reply.WhichOneof("message_response") == "file_descriptor_response"
    files = reply.file_descriptor_response.file_descriptor_proto
    names = [descriptor_pb2.FileDescriptorProto.FromString(raw).name for raw in files]
    assert bus_pb2.DESCRIPTOR.name in names
