"""Starting the ranks of a distributed run (`dist.world_size` > 1) with `torch.distributed.run`.

`pcm train` and the workers start a run's ranks through `torchrun_command`: one
`torch.distributed.run` agent per node, which starts that node's ranks (`world_size / nodes`),
meets the other nodes' agents at the rendezvous, gives every rank its RANK / WORLD_SIZE /
LOCAL_RANK, and — with no restarts — ends every rank and exits non-zero as soon as one rank
fails, so a dead rank never leaves the others waiting.

The rendezvous is torch's static one: node 0's agent holds the TCP store at the endpoint and
waits up to `dist.timeout_s` for the other nodes' agents, and each node is told its node rank.
So node 0 — the worker that claimed the run — holds global ranks 0..k-1, and global rank 0
(the one that reports into the database) is always on it.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

from pcm_engine.config import RunConfig


@dataclass(frozen=True)
class Rendezvous:
    """Where a run's nodes meet: `endpoint` (host:port of the TCP store that node 0's agent
    holds; the other nodes connect to it), and `run_id`, the name the nodes agree on."""

    endpoint: str
    run_id: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now at `host` ("" for every interface)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def local_rendezvous(run_id: str) -> Rendezvous:
    """A rendezvous on this machine's loopback (a one-node run)."""
    return Rendezvous(endpoint=f"127.0.0.1:{free_port()}", run_id=run_id)


def advertised_rendezvous(host: str, run_id: str) -> Rendezvous:
    """A rendezvous that other machines reach at `host` (this machine's advertised address),
    on a port free on every interface (the store listens on all of them)."""
    return Rendezvous(endpoint=f"{host}:{free_port('')}", run_id=run_id)


def torchrun_command(
    config: RunConfig, rendezvous: Rendezvous, module: str, *args: str, node_rank: int = 0
) -> list[str]:
    """The command that starts node `node_rank`'s ranks of a `config.dist` run, each running
    `python -m module args...`. Every node runs the same command but for its node rank."""
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
        "static",
        "--rdzv-endpoint",
        rendezvous.endpoint,
        "--node-rank",
        str(node_rank),
        "--rdzv-id",
        rendezvous.run_id,
        "--rdzv-conf",
        f"timeout={int(d.timeout_s)}",
        "--module",
        module,
        *args,
    ]
