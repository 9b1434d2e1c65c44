"""Runs spread over several processes, on one host or many: JAX's multi-process runtime
(``jax.distributed``) and the one synchronisation ntkequi needs.

A multi-process run (``ntkequi run fmnist_ntk_scale ... --coordinator HOST:PORT
--num-processes N --process-id I``, or ``--distributed`` to read them from Slurm's or Open
MPI's environment) starts the runtime before any JAX computation, fills the run's kernel
tiles with every process computing its share (each process one worker of the run's
:class:`~ntkequi.kernels.TileStore` on the shared file system; within a process, over its
local devices), waits at a barrier, and process 0 then solves and records.
"""
from __future__ import annotations

from typing import Optional

import jax

__all__ = ["initialize", "barrier"]


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> tuple:
    """Start JAX's multi-process runtime (``jax.distributed.initialize``), before any JAX
    computation. All arguments None: from the environment (Slurm, Open MPI; see JAX's
    documentation). On CPU the collectives are gloo's.

    Args:
        coordinator: ``host:port`` of process 0.
        num_processes: the number of processes.
        process_id: this process's index, ``0 <= process_id < num_processes``.

    Returns:
        ``(process_index, process_count)``.

    Raises:
        ValueError: a partial or inconsistent set of arguments, named.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError("give coordinator, num_processes and process_id together (or none of them, to read "
                         f"them from the environment); got coordinator={coordinator!r}, "
                         f"num_processes={num_processes!r}, process_id={process_id!r}")
    if all(given):
        if ":" not in str(coordinator):
            raise ValueError(f"coordinator must be host:port; got {coordinator!r}")
        if not (int(num_processes) >= 1 and 0 <= int(process_id) < int(num_processes)):
            raise ValueError(f"need num_processes >= 1 and 0 <= process_id < num_processes; got "
                             f"{num_processes}, {process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if all(given):
        jax.distributed.initialize(coordinator_address=str(coordinator), num_processes=int(num_processes),
                                   process_id=int(process_id))
    else:
        jax.distributed.initialize()
    return jax.process_index(), jax.process_count()


def barrier(name: str) -> None:
    """Wait until every process of the run reaches the barrier ``name`` (a collective over all
    devices; a no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
