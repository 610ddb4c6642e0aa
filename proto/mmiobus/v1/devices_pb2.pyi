from mmiobus.v1 import bus_pb2 as _bus_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceMessage(_message.Message):
    __slots__ = ("hello", "region", "replies", "dma", "irq", "reset_done", "share", "follow_irqs", "dmas")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    DMA_FIELD_NUMBER: _ClassVar[int]
    IRQ_FIELD_NUMBER: _ClassVar[int]
    RESET_DONE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_IRQS_FIELD_NUMBER: _ClassVar[int]
    DMAS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    region: RegionRequest
    replies: AccessReplies
    dma: DmaRequest
    irq: IrqUpdate
    reset_done: ResetDone
    share: ShareMemory
    follow_irqs: FollowIrqs
    dmas: DmaRequests
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., region: _Optional[_Union[RegionRequest, _Mapping]] = ..., replies: _Optional[_Union[AccessReplies, _Mapping]] = ..., dma: _Optional[_Union[DmaRequest, _Mapping]] = ..., irq: _Optional[_Union[IrqUpdate, _Mapping]] = ..., reset_done: _Optional[_Union[ResetDone, _Mapping]] = ..., share: _Optional[_Union[ShareMemory, _Mapping]] = ..., follow_irqs: _Optional[_Union[FollowIrqs, _Mapping]] = ..., dmas: _Optional[_Union[DmaRequests, _Mapping]] = ...) -> None: ...

class DmaRequests(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[DmaRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[DmaRequest, _Mapping]]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "min_protocol", "max_protocol", "token", "requester_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    MAX_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    min_protocol: int
    max_protocol: int
    token: str
    requester_id: int
    def __init__(self, name: _Optional[str] = ..., min_protocol: _Optional[int] = ..., max_protocol: _Optional[int] = ..., token: _Optional[str] = ..., requester_id: _Optional[int] = ...) -> None: ...

class RegionRequest(_message.Message):
    __slots__ = ("request_id", "claim", "register", "unmap")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    UNMAP_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    claim: ClaimRegion
    register: RegisterRegion
    unmap: UnmapRegion
    def __init__(self, request_id: _Optional[int] = ..., claim: _Optional[_Union[ClaimRegion, _Mapping]] = ..., register: _Optional[_Union[RegisterRegion, _Mapping]] = ..., unmap: _Optional[_Union[UnmapRegion, _Mapping]] = ...) -> None: ...

class ClaimRegion(_message.Message):
    __slots__ = ("region",)
    REGION_FIELD_NUMBER: _ClassVar[int]
    region: str
    def __init__(self, region: _Optional[str] = ...) -> None: ...

class RegisterRegion(_message.Message):
    __slots__ = ("id", "name", "size", "valid", "impl", "endianness", "posted_writes", "address_space", "container", "addr", "priority", "deadline_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    IMPL_FIELD_NUMBER: _ClassVar[int]
    ENDIANNESS_FIELD_NUMBER: _ClassVar[int]
    POSTED_WRITES_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    size: int
    valid: _bus_pb2.AccessSpec
    impl: _bus_pb2.AccessSpec
    endianness: _bus_pb2.Endianness
    posted_writes: bool
    address_space: str
    container: str
    addr: int
    priority: int
    deadline_ms: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., size: _Optional[int] = ..., valid: _Optional[_Union[_bus_pb2.AccessSpec, _Mapping]] = ..., impl: _Optional[_Union[_bus_pb2.AccessSpec, _Mapping]] = ..., endianness: _Optional[_Union[_bus_pb2.Endianness, str]] = ..., posted_writes: _Optional[bool] = ..., address_space: _Optional[str] = ..., container: _Optional[str] = ..., addr: _Optional[int] = ..., priority: _Optional[int] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class UnmapRegion(_message.Message):
    __slots__ = ("handle",)
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    handle: int
    def __init__(self, handle: _Optional[int] = ...) -> None: ...

class AccessReplies(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[AccessReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[AccessReply, _Mapping]]] = ...) -> None: ...

class AccessReply(_message.Message):
    __slots__ = ("id", "value", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: int
    value: int
    result: int
    def __init__(self, id: _Optional[int] = ..., value: _Optional[int] = ..., result: _Optional[int] = ...) -> None: ...

class DmaRequest(_message.Message):
    __slots__ = ("id", "address_space", "addr", "read", "write", "attrs", "on_behalf_of", "posted")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    POSTED_FIELD_NUMBER: _ClassVar[int]
    id: int
    address_space: str
    addr: int
    read: int
    write: bytes
    attrs: _bus_pb2.Attrs
    on_behalf_of: int
    posted: bool
    def __init__(self, id: _Optional[int] = ..., address_space: _Optional[str] = ..., addr: _Optional[int] = ..., read: _Optional[int] = ..., write: _Optional[bytes] = ..., attrs: _Optional[_Union[_bus_pb2.Attrs, _Mapping]] = ..., on_behalf_of: _Optional[int] = ..., posted: _Optional[bool] = ...) -> None: ...

class IrqUpdate(_message.Message):
    __slots__ = ("line", "level", "pulse")
    LINE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    PULSE_FIELD_NUMBER: _ClassVar[int]
    line: str
    level: bool
    pulse: bool
    def __init__(self, line: _Optional[str] = ..., level: _Optional[bool] = ..., pulse: _Optional[bool] = ...) -> None: ...

class ResetDone(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ShareMemory(_message.Message):
    __slots__ = ("request_id", "region")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    region: str
    def __init__(self, request_id: _Optional[int] = ..., region: _Optional[str] = ...) -> None: ...

class FollowIrqs(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[str]] = ...) -> None: ...

class BusMessage(_message.Message):
    __slots__ = ("welcome", "region", "accesses", "dma", "reset", "shared", "irqs", "dmas")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    DMA_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    IRQS_FIELD_NUMBER: _ClassVar[int]
    DMAS_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    region: RegionReply
    accesses: AccessRequests
    dma: DmaReply
    reset: ResetRequest
    shared: SharedMemory
    irqs: IrqLevels
    dmas: DmaReplies
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., region: _Optional[_Union[RegionReply, _Mapping]] = ..., accesses: _Optional[_Union[AccessRequests, _Mapping]] = ..., dma: _Optional[_Union[DmaReply, _Mapping]] = ..., reset: _Optional[_Union[ResetRequest, _Mapping]] = ..., shared: _Optional[_Union[SharedMemory, _Mapping]] = ..., irqs: _Optional[_Union[IrqLevels, _Mapping]] = ..., dmas: _Optional[_Union[DmaReplies, _Mapping]] = ...) -> None: ...

class DmaReplies(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[DmaReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[DmaReply, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("protocol_version", "bus_version", "endianness")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDIANNESS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    bus_version: str
    endianness: _bus_pb2.Endianness
    def __init__(self, protocol_version: _Optional[int] = ..., bus_version: _Optional[str] = ..., endianness: _Optional[_Union[_bus_pb2.Endianness, str]] = ...) -> None: ...

class RegionReply(_message.Message):
    __slots__ = ("request_id", "code", "message", "handle", "region")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    code: int
    message: str
    handle: int
    region: DeviceRegion
    def __init__(self, request_id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., handle: _Optional[int] = ..., region: _Optional[_Union[DeviceRegion, _Mapping]] = ...) -> None: ...

class DeviceRegion(_message.Message):
    __slots__ = ("handle", "id", "size", "valid", "impl", "endianness", "posted_writes", "deadline_ms", "romd")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    IMPL_FIELD_NUMBER: _ClassVar[int]
    ENDIANNESS_FIELD_NUMBER: _ClassVar[int]
    POSTED_WRITES_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    ROMD_FIELD_NUMBER: _ClassVar[int]
    handle: int
    id: str
    size: int
    valid: _bus_pb2.AccessSpec
    impl: _bus_pb2.AccessSpec
    endianness: _bus_pb2.Endianness
    posted_writes: bool
    deadline_ms: int
    romd: bool
    def __init__(self, handle: _Optional[int] = ..., id: _Optional[str] = ..., size: _Optional[int] = ..., valid: _Optional[_Union[_bus_pb2.AccessSpec, _Mapping]] = ..., impl: _Optional[_Union[_bus_pb2.AccessSpec, _Mapping]] = ..., endianness: _Optional[_Union[_bus_pb2.Endianness, str]] = ..., posted_writes: _Optional[bool] = ..., deadline_ms: _Optional[int] = ..., romd: _Optional[bool] = ...) -> None: ...

class AccessRequests(_message.Message):
    __slots__ = ("accesses",)
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    accesses: _containers.RepeatedCompositeFieldContainer[Access]
    def __init__(self, accesses: _Optional[_Iterable[_Union[Access, _Mapping]]] = ...) -> None: ...

class Access(_message.Message):
    __slots__ = ("id", "handle", "offset", "size", "write", "value", "attrs", "posted")
    ID_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    POSTED_FIELD_NUMBER: _ClassVar[int]
    id: int
    handle: int
    offset: int
    size: int
    write: bool
    value: int
    attrs: _bus_pb2.Attrs
    posted: bool
    def __init__(self, id: _Optional[int] = ..., handle: _Optional[int] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., write: _Optional[bool] = ..., value: _Optional[int] = ..., attrs: _Optional[_Union[_bus_pb2.Attrs, _Mapping]] = ..., posted: _Optional[bool] = ...) -> None: ...

class DmaReply(_message.Message):
    __slots__ = ("id", "data", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: int
    data: bytes
    result: int
    def __init__(self, id: _Optional[int] = ..., data: _Optional[bytes] = ..., result: _Optional[int] = ...) -> None: ...

class SharedMemory(_message.Message):
    __slots__ = ("request_id", "code", "message", "path", "size", "inode", "device")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INODE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    code: int
    message: str
    path: str
    size: int
    inode: int
    device: int
    def __init__(self, request_id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., inode: _Optional[int] = ..., device: _Optional[int] = ...) -> None: ...

class IrqLevels(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[IrqLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[IrqLine, _Mapping]]] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("name", "peer", "regions", "accesses", "timeouts", "dma", "in_process")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    DMA_FIELD_NUMBER: _ClassVar[int]
    IN_PROCESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    peer: str
    regions: _containers.RepeatedScalarFieldContainer[str]
    accesses: int
    timeouts: int
    dma: int
    in_process: bool
    def __init__(self, name: _Optional[str] = ..., peer: _Optional[str] = ..., regions: _Optional[_Iterable[str]] = ..., accesses: _Optional[int] = ..., timeouts: _Optional[int] = ..., dma: _Optional[int] = ..., in_process: _Optional[bool] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceInfo]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceInfo, _Mapping]]] = ...) -> None: ...

class ResetDeviceRequest(_message.Message):
    __slots__ = ("name", "timeout_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    timeout_ms: int
    def __init__(self, name: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ResetDeviceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIrqsRequest(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[str]] = ...) -> None: ...

class IrqLine(_message.Message):
    __slots__ = ("name", "level", "changes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    level: bool
    changes: int
    def __init__(self, name: _Optional[str] = ..., level: _Optional[bool] = ..., changes: _Optional[int] = ...) -> None: ...

class IrqLines(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[IrqLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[IrqLine, _Mapping]]] = ...) -> None: ...

class WatchIrqsRequest(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[str]] = ...) -> None: ...

class IrqEvent(_message.Message):
    __slots__ = ("line", "level", "sequence", "timestamp_ns", "snapshot", "lost")
    LINE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    line: str
    level: bool
    sequence: int
    timestamp_ns: int
    snapshot: bool
    lost: int
    def __init__(self, line: _Optional[str] = ..., level: _Optional[bool] = ..., sequence: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., snapshot: _Optional[bool] = ..., lost: _Optional[int] = ...) -> None: ...
