"""Starting the ranks of a distributed run (`dist.world_size` > 1) with `torch.distributed.run`.

`pcm train` and the worker both start a run's ranks through `torchrun_command`: one
`torch.distributed.run` agent per node, which starts that node's ranks (`world_size / nodes`),
joins the other nodes' agents at the c10d rendezvous, gives every rank its RANK / WORLD_SIZE /
LOCAL_RANK, and — with no restarts — ends every rank and exits non-zero as soon as one rank
fails, so a dead rank never leaves the others waiting.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

from pcm_engine.config import RunConfig


@dataclass(frozen=True)
class Rendezvous:
    """Where a run's nodes meet: `endpoint` (host:port of the c10d store, held by the agent of
    the node that reaches it first), and `run_id`, the name the nodes agree on."""

    endpoint: str
    run_id: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for a one-node run's rendezvous)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def local_rendezvous(run_id: str) -> Rendezvous:
    return Rendezvous(endpoint=f"127.0.0.1:{free_port()}", run_id=run_id)


def torchrun_command(config: RunConfig, rendezvous: Rendezvous, module: str, *args: str) -> list[str]:
    """The command that starts this node's ranks of a `config.dist` run, each running
    `python -m module args...`. Every node of the run runs the same command."""
    d = config.dist
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(d.nodes),
        "--nproc-per-node",
        str(d.world_size // d.nodes),
        "--max-restarts",
        "0",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        rendezvous.endpoint,
        "--rdzv-id",
        rendezvous.run_id,
        "--rdzv-conf",
        f"join_timeout={int(d.timeout_s)}",
        "--module",
        module,
        *args,
    ]
