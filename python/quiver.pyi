# SPDX-License-Identifier: Apache-2.0
"""Type stubs of the quiver extension module (python/quivermodule.c)."""
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

OK: int
UNKNOWN_MODEL: int
BAD_SHAPE: int
BAD_REQUEST: int
DEADLINE_EXCEEDED: int
OVERLOADED: int
UNAVAILABLE: int
INTERNAL: int
FLAG_FALLBACK: int
FLAG_CANARY: int
DEFAULT_SOCKET: str

ArrayIn = npt.ArrayLike
Inputs = Union[ArrayIn, Mapping[str, ArrayIn]]
Outputs = Union[np.ndarray, Dict[str, np.ndarray]]


class Error(Exception):
    """Base of quiver's errors."""
    status: int   # quiver.OK ... quiver.INTERNAL
    errno: int    # the errno behind it, or 0


class UnknownModelError(Error): ...
class ShapeError(Error, ValueError): ...
class DtypeError(Error, TypeError): ...
class BadRequestError(Error): ...
class DeadlineExceededError(Error): ...
class TimeoutError(DeadlineExceededError): ...
class OverloadedError(Error): ...
class UnavailableError(Error): ...
class InternalError(Error): ...


class TensorInfo(NamedTuple):
    name: str
    dtype: np.dtype
    shape: Tuple[Optional[int], ...]   # None: the batch dimension
    index_bound: int                   # ids in [0, index_bound); 0: not an id input


class ModelInfo(NamedTuple):
    name: str
    handle: int
    version: int
    max_batch: int
    inputs: Tuple[TensorInfo, ...]
    outputs: Tuple[TensorInfo, ...]


class Result(NamedTuple):
    request_id: int
    status: int
    output: Optional[Outputs]
    error: Optional[Error]
    version: int
    flags: int


class _ClientBase:
    @property
    def inflight(self) -> int: ...
    def lookup(self, model: str) -> ModelInfo: ...
    def infer(self, model: str, x: Inputs, *, timeout_ms: int = 0, deadline_ns: int = 0,
              routing_key: int = 0) -> Outputs: ...
    def submit(self, model: str, x: Inputs, *, request_id: Optional[int] = None,
               deadline_ns: int = 0, routing_key: int = 0) -> int: ...
    def poll(self, max: int = 64, *, timeout_ms: int = 0) -> List[Result]: ...
    def close(self) -> None: ...
    def __enter__(self: "_ClientBase") -> "_ClientBase": ...
    def __exit__(self, *exc: object) -> None: ...


class Client(_ClientBase):
    def __init__(self, socket_path: Optional[str] = None, *, name: Optional[str] = None,
                 slots: int = 0, slot_in_bytes: int = 0, slot_out_bytes: int = 0,
                 dead_after_ms: int = 0) -> None: ...


class UdpClient(_ClientBase):
    def __init__(self, address: str, *, max_inflight: int = 0, timeout_ms: int = 0) -> None: ...


def strerror(status: int) -> str: ...
