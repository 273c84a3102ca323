"""The daemon's connection to Ray, and what a lost worker looks like to the loop.

`connect` joins an existing cluster (`"auto"`, `"host:port"`, `"ray://…"`; an address where
nothing answers within `CONNECT_TIMEOUT_S` is a one-line error at once) or starts a private local
instance (no address). `result`/`wait` turn Ray's ways of saying "the process or machine
running this task is gone" into one exception, `WorkerLost`, which the loop records as an
interrupted crash before it reschedules the lane; an exception raised by the task itself comes
back as itself. Tasks are submitted with `max_retries=0` (daemon/ray/tasks.py): Ray never runs an
agent turn twice behind the daemon's back.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray import exceptions as rex

from shared.errors import UserError

LOST = (
    rex.WorkerCrashedError,
    rex.NodeDiedError,
    rex.ObjectLostError,
    rex.OwnerDiedError,
    rex.ActorDiedError,
    rex.ActorUnavailableError,
    rex.RaySystemError,
    rex.LocalRayletDiedError,
)
"""Ray's ways of saying the process or node running a task is gone (ObjectLostError includes
ObjectReconstructionFailedError)."""
STANDARD = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
CLIENT_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 5.0
"""How long the daemon waits for an address to answer before the run ends with an error (Ray
itself keeps retrying an unreachable cluster for a minute or more)."""


class WorkerLost(Exception):
    """The worker (its process or its node) died while running a task: the experiment is an
    interrupted crash, and the lane is scheduled again."""


@dataclass(frozen=True)
class Cluster:
    address: str
    """Where the daemon is connected (the GCS address)."""
    started: bool
    """Whether `connect` started this instance (then `disconnect` ends it)."""
    resources: dict[str, float]
    """What the cluster has in all, as Ray counts it (CPU, GPU, memory, custom resources)."""


def connect(
    address: str | None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: Mapping[str, float] | None = None,
    node_ip_address: str | None = None,
    note: Callable[[str], None] | None = None,
) -> Cluster:
    """Join the cluster at `address` (`"auto"`: the one this machine belongs to), or start a
        local instance with the given resources when `address` is None. UserError when it cannot be
        reached. `node_ip_address` is this machine's address in the cluster, when Ray's guess is wrong.
    `note` hears of a failed `ray://` join that is tried again.
    Worker output is not mirrored into the daemon's log (the turn's log stream is)."""
    if ray.is_initialized():
        ray.shutdown()
    if address is not None:
        _probe(address)
    common: dict[str, Any] = {"log_to_driver": False, "namespace": "expd", "logging_level": "ERROR"}
    if node_ip_address is not None:
        common["_node_ip_address"] = node_ip_address
    try:
        if address is None:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                resources=dict(resources or {}),
                include_dashboard=False,
                **common,
            )
        else:
            _join(address, common, note or (lambda line: None))
    except (ConnectionError, RuntimeError, ValueError, rex.RaySystemError) as exc:
        where = address or "a local instance"
        raise UserError(f"[lanes] address: cannot reach Ray at {where}: {_reason(exc)}") from None
    info = ray.get_runtime_context().gcs_address
    return Cluster(address=info, started=address is None, resources=ray.cluster_resources())


def _join(address: str, common: Mapping[str, Any], note: Callable[[str], None]) -> None:
    """`ray.init` at `address`. The head's Ray Client server starts a server process of its own
    for each client, and that start can fail on a busy head: a `ray://` join is tried up to
    `CLIENT_ATTEMPTS` times before the failure is the run's."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, **common)
            return
        except ConnectionAbortedError as exc:
            if not address.startswith("ray://") or attempt == CLIENT_ATTEMPTS:
                raise
            note(f"joining Ray at {address} failed (attempt {attempt}): {_reason(exc)}")
            if ray.is_initialized():
                ray.shutdown()
            time.sleep(attempt)


def _reason(exc: BaseException) -> str:
    """One line for why joining failed. Ray Client's "Initialization failure from server:" is
    followed by the server's traceback, whose last line says why."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[-1]}"[:500]
    return lines[0][:500]


def _probe(address: str) -> None:
    """UserError at once when nothing answers at `address` ("host:port", "ray://host:port"):
    better a clear line now than Ray's retries."""
    if address == "auto":
        return  # Ray looks for a cluster this machine runs, and says at once if there is none
    client = address.startswith("ray://")
    where = address.removeprefix("ray://").split("/", 1)[0]
    host, sep, port = where.rpartition(":")
    if not sep:
        host, port = where, "10001" if client else "6379"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except ValueError:
        raise UserError(f"[lanes] address: {address!r} is not host:port") from None
    except TimeoutError:
        why = f"no answer within {CONNECT_TIMEOUT_S:g}s"
        raise UserError(f"[lanes] address: cannot reach Ray at {address}: {why}") from None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UserError(f"[lanes] address: cannot reach Ray at {address}: {why}") from None


def disconnect() -> None:
    """Leave the cluster (a local instance `connect` started ends with it)."""
    if ray.is_initialized():
        ray.shutdown()


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, LOST):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return WorkerLost(f"the Ray worker was lost: {type(exc).__name__}: {first[:300]}")
    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else None
        if cause is not None and not isinstance(cause, rex.RayError):
            return cause
        if isinstance(cause, LOST):
            return _translate(cause)
    return exc


def result(ref: ray.ObjectRef, timeout: float | None = None) -> Any:
    """The task's return value (blocking); WorkerLost when its worker died, the task's own
    exception when it raised one, TimeoutError after `timeout` seconds (the task goes on)."""
    try:
        return ray.get(ref, timeout=timeout)
    except rex.GetTimeoutError:
        raise TimeoutError(f"no result within {timeout:g}s") from None
    except (rex.RayError, rex.RayTaskError) as exc:
        raise _translate(exc) from None


async def wait(ref: ray.ObjectRef) -> Any:
    """`result` for the daemon's event loop (asyncio): awaits the task without blocking it, and a
    cancelled wait cancels the task (its agent's process group is ended on the worker)."""
    try:
        return await ref
    except (rex.RayError, rex.RayTaskError) as exc:
        raise _translate(exc) from None
    except BaseException:
        ray.cancel(ref)
        raise


def options(request: Mapping[str, float] | None) -> dict[str, Any]:
    """Ray task options from `[lanes] agent_resources` / `measure_resources`: `num_cpus`,
    `num_gpus` and `memory` as Ray names them, any other key a custom resource. ValueError (one
    line) for a value that is not a non-negative number."""
    out: dict[str, Any] = {}
    custom: dict[str, float] = {}
    for key, value in (request or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"resource {key!r} = {value!r}: use a non-negative number")
        if key in ("num_cpus", "num_gpus", "memory"):
            out[key] = value
        elif key in STANDARD:
            raise ValueError(f"resource {key!r}: write num_cpus, num_gpus or memory")
        else:
            custom[key] = float(value)
    if custom:
        out["resources"] = custom
    return out
