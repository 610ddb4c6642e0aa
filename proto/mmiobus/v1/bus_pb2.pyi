from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemTxResultBit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMTX_OK: _ClassVar[MemTxResultBit]
    MEMTX_ERROR: _ClassVar[MemTxResultBit]
    MEMTX_DECODE_ERROR: _ClassVar[MemTxResultBit]
    MEMTX_ACCESS_ERROR: _ClassVar[MemTxResultBit]

class RegionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGION_KIND_UNSPECIFIED: _ClassVar[RegionKind]
    CONTAINER: _ClassVar[RegionKind]
    RAM: _ClassVar[RegionKind]
    ROM: _ClassVar[RegionKind]
    ROMD: _ClassVar[RegionKind]
    MMIO: _ClassVar[RegionKind]
    ALIAS: _ClassVar[RegionKind]

class Endianness(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NATIVE: _ClassVar[Endianness]
    LITTLE: _ClassVar[Endianness]
    BIG: _ClassVar[Endianness]

class Unassigned(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNASSIGNED_MEMORY: _ClassVar[Unassigned]
    UNASSIGNED_IO: _ClassVar[Unassigned]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANY_DIRECTION: _ClassVar[Direction]
    READS: _ClassVar[Direction]
    WRITES: _ClassVar[Direction]

class ResultFilter(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANY_RESULT: _ClassVar[ResultFilter]
    OK_ONLY: _ClassVar[ResultFilter]
    FAULTS_ONLY: _ClassVar[ResultFilter]
MEMTX_OK: MemTxResultBit
MEMTX_ERROR: MemTxResultBit
MEMTX_DECODE_ERROR: MemTxResultBit
MEMTX_ACCESS_ERROR: MemTxResultBit
REGION_KIND_UNSPECIFIED: RegionKind
CONTAINER: RegionKind
RAM: RegionKind
ROM: RegionKind
ROMD: RegionKind
MMIO: RegionKind
ALIAS: RegionKind
NATIVE: Endianness
LITTLE: Endianness
BIG: Endianness
UNASSIGNED_MEMORY: Unassigned
UNASSIGNED_IO: Unassigned
ANY_DIRECTION: Direction
READS: Direction
WRITES: Direction
ANY_RESULT: ResultFilter
OK_ONLY: ResultFilter
FAULTS_ONLY: ResultFilter

class Attrs(_message.Message):
    __slots__ = ("requester_id", "secure", "user", "memory")
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    SECURE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    requester_id: int
    secure: bool
    user: bool
    memory: bool
    def __init__(self, requester_id: _Optional[int] = ..., secure: _Optional[bool] = ..., user: _Optional[bool] = ..., memory: _Optional[bool] = ...) -> None: ...

class RwRequest(_message.Message):
    __slots__ = ("id", "address_space", "addr", "read", "write", "attrs")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    id: int
    address_space: str
    addr: int
    read: int
    write: bytes
    attrs: Attrs
    def __init__(self, id: _Optional[int] = ..., address_space: _Optional[str] = ..., addr: _Optional[int] = ..., read: _Optional[int] = ..., write: _Optional[bytes] = ..., attrs: _Optional[_Union[Attrs, _Mapping]] = ...) -> None: ...

class RwResponse(_message.Message):
    __slots__ = ("id", "data", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: int
    data: bytes
    result: int
    def __init__(self, id: _Optional[int] = ..., data: _Optional[bytes] = ..., result: _Optional[int] = ...) -> None: ...

class RwStreamRequest(_message.Message):
    __slots__ = ("accesses",)
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    accesses: _containers.RepeatedCompositeFieldContainer[RwRequest]
    def __init__(self, accesses: _Optional[_Iterable[_Union[RwRequest, _Mapping]]] = ...) -> None: ...

class RwStreamResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RwResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[RwResponse, _Mapping]]] = ...) -> None: ...

class RwBatchRequest(_message.Message):
    __slots__ = ("accesses",)
    ACCESSES_FIELD_NUMBER: _ClassVar[int]
    accesses: _containers.RepeatedCompositeFieldContainer[RwRequest]
    def __init__(self, accesses: _Optional[_Iterable[_Union[RwRequest, _Mapping]]] = ...) -> None: ...

class RwBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RwResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[RwResponse, _Mapping]]] = ...) -> None: ...

class AccessSpec(_message.Message):
    __slots__ = ("min", "max", "unaligned")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    UNALIGNED_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    unaligned: bool
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ..., unaligned: _Optional[bool] = ...) -> None: ...

class CreateRegion(_message.Message):
    __slots__ = ("id", "name", "kind", "size", "target", "offset", "contents", "valid", "impl", "endianness", "unassigned", "readonly", "nonvolatile")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    IMPL_FIELD_NUMBER: _ClassVar[int]
    ENDIANNESS_FIELD_NUMBER: _ClassVar[int]
    UNASSIGNED_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    NONVOLATILE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: RegionKind
    size: int
    target: str
    offset: int
    contents: bytes
    valid: AccessSpec
    impl: AccessSpec
    endianness: Endianness
    unassigned: Unassigned
    readonly: bool
    nonvolatile: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[RegionKind, str]] = ..., size: _Optional[int] = ..., target: _Optional[str] = ..., offset: _Optional[int] = ..., contents: _Optional[bytes] = ..., valid: _Optional[_Union[AccessSpec, _Mapping]] = ..., impl: _Optional[_Union[AccessSpec, _Mapping]] = ..., endianness: _Optional[_Union[Endianness, str]] = ..., unassigned: _Optional[_Union[Unassigned, str]] = ..., readonly: _Optional[bool] = ..., nonvolatile: _Optional[bool] = ...) -> None: ...

class DeleteRegion(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AddSubregion(_message.Message):
    __slots__ = ("parent", "child", "addr", "priority")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CHILD_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    child: str
    addr: int
    priority: int
    def __init__(self, parent: _Optional[str] = ..., child: _Optional[str] = ..., addr: _Optional[int] = ..., priority: _Optional[int] = ...) -> None: ...

class RemoveSubregion(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: str
    def __init__(self, child: _Optional[str] = ...) -> None: ...

class SetAddress(_message.Message):
    __slots__ = ("id", "addr")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    id: str
    addr: int
    def __init__(self, id: _Optional[str] = ..., addr: _Optional[int] = ...) -> None: ...

class SetPriority(_message.Message):
    __slots__ = ("id", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    priority: int
    def __init__(self, id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class SetEnabled(_message.Message):
    __slots__ = ("id", "enabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    enabled: bool
    def __init__(self, id: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetAliasOffset(_message.Message):
    __slots__ = ("id", "offset")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    id: str
    offset: int
    def __init__(self, id: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class SetSize(_message.Message):
    __slots__ = ("id", "size")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    size: int
    def __init__(self, id: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class CreateAddressSpace(_message.Message):
    __slots__ = ("id", "name", "root")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    root: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., root: _Optional[str] = ...) -> None: ...

class SetReadonly(_message.Message):
    __slots__ = ("id", "readonly")
    ID_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    readonly: bool
    def __init__(self, id: _Optional[str] = ..., readonly: _Optional[bool] = ...) -> None: ...

class SetRomd(_message.Message):
    __slots__ = ("id", "romd_mode")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROMD_MODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    romd_mode: bool
    def __init__(self, id: _Optional[str] = ..., romd_mode: _Optional[bool] = ...) -> None: ...

class DeleteAddressSpace(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class TopologyOp(_message.Message):
    __slots__ = ("create_region", "delete_region", "add_subregion", "remove_subregion", "set_address", "set_priority", "set_enabled", "set_alias_offset", "set_size", "create_address_space", "set_readonly", "set_romd", "delete_address_space")
    CREATE_REGION_FIELD_NUMBER: _ClassVar[int]
    DELETE_REGION_FIELD_NUMBER: _ClassVar[int]
    ADD_SUBREGION_FIELD_NUMBER: _ClassVar[int]
    REMOVE_SUBREGION_FIELD_NUMBER: _ClassVar[int]
    SET_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SET_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SET_ENABLED_FIELD_NUMBER: _ClassVar[int]
    SET_ALIAS_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATE_ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    SET_READONLY_FIELD_NUMBER: _ClassVar[int]
    SET_ROMD_FIELD_NUMBER: _ClassVar[int]
    DELETE_ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    create_region: CreateRegion
    delete_region: DeleteRegion
    add_subregion: AddSubregion
    remove_subregion: RemoveSubregion
    set_address: SetAddress
    set_priority: SetPriority
    set_enabled: SetEnabled
    set_alias_offset: SetAliasOffset
    set_size: SetSize
    create_address_space: CreateAddressSpace
    set_readonly: SetReadonly
    set_romd: SetRomd
    delete_address_space: DeleteAddressSpace
    def __init__(self, create_region: _Optional[_Union[CreateRegion, _Mapping]] = ..., delete_region: _Optional[_Union[DeleteRegion, _Mapping]] = ..., add_subregion: _Optional[_Union[AddSubregion, _Mapping]] = ..., remove_subregion: _Optional[_Union[RemoveSubregion, _Mapping]] = ..., set_address: _Optional[_Union[SetAddress, _Mapping]] = ..., set_priority: _Optional[_Union[SetPriority, _Mapping]] = ..., set_enabled: _Optional[_Union[SetEnabled, _Mapping]] = ..., set_alias_offset: _Optional[_Union[SetAliasOffset, _Mapping]] = ..., set_size: _Optional[_Union[SetSize, _Mapping]] = ..., create_address_space: _Optional[_Union[CreateAddressSpace, _Mapping]] = ..., set_readonly: _Optional[_Union[SetReadonly, _Mapping]] = ..., set_romd: _Optional[_Union[SetRomd, _Mapping]] = ..., delete_address_space: _Optional[_Union[DeleteAddressSpace, _Mapping]] = ...) -> None: ...

class ApplyTopologyRequest(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[TopologyOp]
    def __init__(self, ops: _Optional[_Iterable[_Union[TopologyOp, _Mapping]]] = ...) -> None: ...

class ApplyTopologyResponse(_message.Message):
    __slots__ = ("applied", "generation")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    applied: int
    generation: int
    def __init__(self, applied: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class GetTopologyRequest(_message.Message):
    __slots__ = ("flat_views",)
    FLAT_VIEWS_FIELD_NUMBER: _ClassVar[int]
    flat_views: bool
    def __init__(self, flat_views: _Optional[bool] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("id", "name", "kind", "size", "addr", "priority", "enabled", "container", "subregions", "target", "offset", "readonly", "nonvolatile", "romd_mode", "device", "declared_device", "device_class", "absent", "deadline_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    SUBREGIONS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    NONVOLATILE_FIELD_NUMBER: _ClassVar[int]
    ROMD_MODE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DECLARED_DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: RegionKind
    size: int
    addr: int
    priority: int
    enabled: bool
    container: str
    subregions: _containers.RepeatedScalarFieldContainer[str]
    target: str
    offset: int
    readonly: bool
    nonvolatile: bool
    romd_mode: bool
    device: str
    declared_device: str
    device_class: str
    absent: str
    deadline_ms: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[RegionKind, str]] = ..., size: _Optional[int] = ..., addr: _Optional[int] = ..., priority: _Optional[int] = ..., enabled: _Optional[bool] = ..., container: _Optional[str] = ..., subregions: _Optional[_Iterable[str]] = ..., target: _Optional[str] = ..., offset: _Optional[int] = ..., readonly: _Optional[bool] = ..., nonvolatile: _Optional[bool] = ..., romd_mode: _Optional[bool] = ..., device: _Optional[str] = ..., declared_device: _Optional[str] = ..., device_class: _Optional[str] = ..., absent: _Optional[str] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class FlatRange(_message.Message):
    __slots__ = ("start", "size", "region", "offset", "readonly", "nonvolatile")
    START_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    NONVOLATILE_FIELD_NUMBER: _ClassVar[int]
    start: int
    size: int
    region: str
    offset: int
    readonly: bool
    nonvolatile: bool
    def __init__(self, start: _Optional[int] = ..., size: _Optional[int] = ..., region: _Optional[str] = ..., offset: _Optional[int] = ..., readonly: _Optional[bool] = ..., nonvolatile: _Optional[bool] = ...) -> None: ...

class AddressSpace(_message.Message):
    __slots__ = ("id", "name", "root", "flatview_root", "flat_view")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    FLATVIEW_ROOT_FIELD_NUMBER: _ClassVar[int]
    FLAT_VIEW_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    root: str
    flatview_root: str
    flat_view: _containers.RepeatedCompositeFieldContainer[FlatRange]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., root: _Optional[str] = ..., flatview_root: _Optional[str] = ..., flat_view: _Optional[_Iterable[_Union[FlatRange, _Mapping]]] = ...) -> None: ...

class Topology(_message.Message):
    __slots__ = ("endianness", "address_spaces", "regions", "generation")
    ENDIANNESS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACES_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    endianness: Endianness
    address_spaces: _containers.RepeatedCompositeFieldContainer[AddressSpace]
    regions: _containers.RepeatedCompositeFieldContainer[Region]
    generation: int
    def __init__(self, endianness: _Optional[_Union[Endianness, str]] = ..., address_spaces: _Optional[_Iterable[_Union[AddressSpace, _Mapping]]] = ..., regions: _Optional[_Iterable[_Union[Region, _Mapping]]] = ..., generation: _Optional[int] = ...) -> None: ...

class MtreeRequest(_message.Message):
    __slots__ = ("flat", "disabled")
    FLAT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    flat: bool
    disabled: bool
    def __init__(self, flat: _Optional[bool] = ..., disabled: _Optional[bool] = ...) -> None: ...

class MtreeResponse(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_access_bytes", "max_batch_bytes", "max_batch_accesses", "max_topology_ops", "max_message_bytes")
    MAX_ACCESS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ACCESSES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOPOLOGY_OPS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_access_bytes: int
    max_batch_bytes: int
    max_batch_accesses: int
    max_topology_ops: int
    max_message_bytes: int
    def __init__(self, max_access_bytes: _Optional[int] = ..., max_batch_bytes: _Optional[int] = ..., max_batch_accesses: _Optional[int] = ..., max_topology_ops: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class Info(_message.Message):
    __slots__ = ("version", "protocol_version", "machine", "endianness", "address_spaces", "limits", "cpus")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    ENDIANNESS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    version: str
    protocol_version: int
    machine: str
    endianness: Endianness
    address_spaces: _containers.RepeatedCompositeFieldContainer[AddressSpace]
    limits: Limits
    cpus: _containers.RepeatedCompositeFieldContainer[Cpu]
    def __init__(self, version: _Optional[str] = ..., protocol_version: _Optional[int] = ..., machine: _Optional[str] = ..., endianness: _Optional[_Union[Endianness, str]] = ..., address_spaces: _Optional[_Iterable[_Union[AddressSpace, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., cpus: _Optional[_Iterable[_Union[Cpu, _Mapping]]] = ...) -> None: ...

class Cpu(_message.Message):
    __slots__ = ("name", "arch", "board", "address_space", "ram", "firmware_addr", "payload_addr", "fdt_addr", "fdt", "board_devices", "interrupts", "timebase_hz", "in_server", "firmware", "payload", "devices")
    class BoardDevicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class InterruptsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    RAM_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_ADDR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_ADDR_FIELD_NUMBER: _ClassVar[int]
    FDT_ADDR_FIELD_NUMBER: _ClassVar[int]
    FDT_FIELD_NUMBER: _ClassVar[int]
    BOARD_DEVICES_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEBASE_HZ_FIELD_NUMBER: _ClassVar[int]
    IN_SERVER_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    arch: str
    board: str
    address_space: str
    ram: str
    firmware_addr: int
    payload_addr: int
    fdt_addr: int
    fdt: bytes
    board_devices: _containers.ScalarMap[str, str]
    interrupts: _containers.ScalarMap[str, int]
    timebase_hz: int
    in_server: bool
    firmware: str
    payload: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., arch: _Optional[str] = ..., board: _Optional[str] = ..., address_space: _Optional[str] = ..., ram: _Optional[str] = ..., firmware_addr: _Optional[int] = ..., payload_addr: _Optional[int] = ..., fdt_addr: _Optional[int] = ..., fdt: _Optional[bytes] = ..., board_devices: _Optional[_Mapping[str, str]] = ..., interrupts: _Optional[_Mapping[str, int]] = ..., timebase_hz: _Optional[int] = ..., in_server: _Optional[bool] = ..., firmware: _Optional[str] = ..., payload: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ...) -> None: ...

class AddressRange(_message.Message):
    __slots__ = ("start", "size")
    START_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    start: int
    size: int
    def __init__(self, start: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class TraceRequest(_message.Message):
    __slots__ = ("ranges", "address_spaces", "regions", "direction", "kinds", "initiators", "results", "sample_rate", "max_data_bytes", "queue_capacity")
    RANGES_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACES_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    INITIATORS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_DATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ranges: _containers.RepeatedCompositeFieldContainer[AddressRange]
    address_spaces: _containers.RepeatedScalarFieldContainer[str]
    regions: _containers.RepeatedScalarFieldContainer[str]
    direction: Direction
    kinds: _containers.RepeatedScalarFieldContainer[str]
    initiators: _containers.RepeatedScalarFieldContainer[str]
    results: ResultFilter
    sample_rate: float
    max_data_bytes: int
    queue_capacity: int
    def __init__(self, ranges: _Optional[_Iterable[_Union[AddressRange, _Mapping]]] = ..., address_spaces: _Optional[_Iterable[str]] = ..., regions: _Optional[_Iterable[str]] = ..., direction: _Optional[_Union[Direction, str]] = ..., kinds: _Optional[_Iterable[str]] = ..., initiators: _Optional[_Iterable[str]] = ..., results: _Optional[_Union[ResultFilter, str]] = ..., sample_rate: _Optional[float] = ..., max_data_bytes: _Optional[int] = ..., queue_capacity: _Optional[int] = ...) -> None: ...

class TraceEvent(_message.Message):
    __slots__ = ("seq", "timestamp_ns", "address_space", "addr", "size", "write", "data", "data_truncated", "result", "region", "offset", "kind", "initiator", "requester_id", "latency_ns", "lost")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DATA_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_NS_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    seq: int
    timestamp_ns: int
    address_space: str
    addr: int
    size: int
    write: bool
    data: bytes
    data_truncated: bool
    result: int
    region: str
    offset: int
    kind: str
    initiator: str
    requester_id: int
    latency_ns: int
    lost: int
    def __init__(self, seq: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., address_space: _Optional[str] = ..., addr: _Optional[int] = ..., size: _Optional[int] = ..., write: _Optional[bool] = ..., data: _Optional[bytes] = ..., data_truncated: _Optional[bool] = ..., result: _Optional[int] = ..., region: _Optional[str] = ..., offset: _Optional[int] = ..., kind: _Optional[str] = ..., initiator: _Optional[str] = ..., requester_id: _Optional[int] = ..., latency_ns: _Optional[int] = ..., lost: _Optional[int] = ...) -> None: ...

class TraceBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TraceEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[TraceEvent, _Mapping]]] = ...) -> None: ...

class WatchTopologyRequest(_message.Message):
    __slots__ = ("address_space",)
    ADDRESS_SPACE_FIELD_NUMBER: _ClassVar[int]
    address_space: str
    def __init__(self, address_space: _Optional[str] = ...) -> None: ...

class FlatRangeChange(_message.Message):
    __slots__ = ("add", "range")
    ADD_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    add: bool
    range: FlatRange
    def __init__(self, add: _Optional[bool] = ..., range: _Optional[_Union[FlatRange, _Mapping]] = ...) -> None: ...

class TopologyChange(_message.Message):
    __slots__ = ("snapshot", "generation", "changes")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    snapshot: bool
    generation: int
    changes: _containers.RepeatedCompositeFieldContainer[FlatRangeChange]
    def __init__(self, snapshot: _Optional[bool] = ..., generation: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[FlatRangeChange, _Mapping]]] = ...) -> None: ...
