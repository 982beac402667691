"""Several processes (``torchrun`` / ``accelerate launch``): who is the main process, which shard of the
clips a rank works on, gathering per-clip results, and writing files once.

A thin layer over ``accelerate.PartialState`` (the same state the ``Trainer`` uses), so a single
process and N processes run the same code: with one process every helper is the identity.

    rank, world = process_index(), num_processes()
    mine = shard(examples)                      # examples[rank::world]
    local = {ex.video_id: score(ex) for ex in mine}
    everything = gather_dict(local)             # the union, on every rank
    if is_main_process():
        torch.save(everything, path)            # written once
    wait_for_everyone()

Backends: gloo on CPU, NCCL on CUDA (chosen by accelerate). Gathering goes through
``torch.distributed.all_gather_object`` (pickled), fine for per-clip results of a few hundred bytes.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

T = TypeVar("T")


def _state():
    """The process-wide ``accelerate.PartialState`` (initialises the process group under torchrun).

    Without CUDA it is created with ``cpu=True``: accelerate otherwise sets up no process group on a
    CPU-only machine (every rank would believe it is alone). Once the Trainer's arguments have
    created the state, this returns that same state."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    global _CLEANUP_REGISTERED
    if not _CLEANUP_REGISTERED:
        import atexit

        atexit.register(_destroy_process_group)
        _CLEANUP_REGISTERED = True
    return state


_CLEANUP_REGISTERED = False


def _destroy_process_group() -> None:
    """At interpreter exit: tear the process group down while Python still runs. Left to the C++
    destructors, gloo's threads can be killed mid-flight ("terminate called without an active
    exception", SIGABRT on one rank, seen about 1 run in 4 under torchrun on CPU)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def num_processes() -> int:
    """Number of training processes (1 without a launcher)."""
    return int(_state().num_processes)


def process_index() -> int:
    """Global rank of this process, 0 ... ``num_processes() - 1``."""
    return int(_state().process_index)


def is_main_process() -> bool:
    """True on global rank 0: the one process that writes manifests, caches and prints results."""
    return bool(_state().is_main_process)


def wait_for_everyone() -> None:
    """Barrier across all processes (no-op with one process)."""
    _state().wait_for_everyone()


def broadcast_from_main(obj: T) -> T:
    """Rank 0's ``obj`` (picklable), returned on every rank; the identity with one process. Used where all
    ranks must take the same decision (e.g. the training clock of ``vqalib.train.budget`` stopping a run)."""
    if num_processes() == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def process_device(device: str) -> str:
    """The device this rank should use for ``device`` (``cpu`` | ``cuda`` | ``cuda:N``): on CUDA with
    several processes, the rank's own GPU (``cuda:<local rank>``, as the Trainer uses), else ``device``."""
    if device.startswith("cuda") and num_processes() > 1:
        return str(_state().device)
    return device


def shard(items: Sequence[T], rank: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from ``rank`` (``items[rank::world]``).

    Shards differ in length by at most one and their union is ``items``; with one process this is
    ``list(items)``. ``rank``/``world`` default to this process's."""
    rank = process_index() if rank is None else rank
    world = num_processes() if world is None else world
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: rank {rank} is not in 0..{world - 1}")
    return list(items[rank::world])


def gather_dict(local: dict[str, Any]) -> dict[str, Any]:
    """The union of every rank's ``local`` mapping, returned on every rank.

    Tensors should be on CPU (they are pickled). A key produced by two ranks raises: shards must not
    overlap, and silently keeping one of two results would hide a sharding bug."""
    world = num_processes()
    if world == 1:
        return dict(local)
    import torch.distributed as dist

    parts: list[dict[str, Any] | None] = [None] * world
    dist.all_gather_object(parts, local)
    out: dict[str, Any] = {}
    for rank, part in enumerate(parts):
        for key, value in (part or {}).items():
            if key in out:
                raise RuntimeError(f"gather_dict: key {key!r} came from two ranks (rank {rank} and an earlier one); "
                                   f"the shards overlap")
            out[key] = value
    return out
