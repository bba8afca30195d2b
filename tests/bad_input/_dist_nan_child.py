"""Child of ``test_distributed.py`` (run by ``torchrun --nproc_per_node 2``, or forked by
:func:`tests.forked_ranks.run_ranks`): rank 1's second batch holds NaN pixels.

Writes ``<out>/rank<r>.json`` with what NaNGuard raised, the iteration reached, and whether the weights are the
post-iteration-1 ones and equal across ranks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Events
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from monai_ssl.engines import ContrastiveTrainer
from monai_ssl.handlers import NaNGuard, NonFiniteLossError
from monai_ssl.losses import NTXentLoss
from monai_ssl.networks import ContrastiveModel, ProjectionHead


def train_with_nan_on_rank_1(out: Path) -> dict:
    """Three steps of DDP contrastive training in the initialised process group; returns (and writes) the result."""
    rank = dist.get_rank()
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = ContrastiveModel(encoder, ProjectionHead(8, 16, 8))
    g = torch.Generator().manual_seed(10 + rank)
    batches = [{f"image_view_{v}": torch.rand(4, 1, 12, 12, generator=g) for v in (0, 1)} for _ in range(3)]
    if rank == 1:
        batches[1]["image_view_0"][0, 0, 3, 3] = float("nan")  # one bad pixel on one rank only
    ddp = DistributedDataParallel(model)
    trainer = ContrastiveTrainer("cpu", 1, batches, ddp, torch.optim.SGD(ddp.parameters(), lr=0.1),
                                 NTXentLoss(0.5, gather_distributed=False))  # the loss is NaN on rank 1 alone
    NaNGuard().attach(trainer)
    snapshots = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: snapshots.append(
        torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])))
    try:
        trainer.run()
        error = None
    except NonFiniteLossError as e:
        error = str(e)
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    everyone = [torch.zeros_like(weights) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, weights)
    result = {"error": error, "iteration": trainer.state.iteration, "completed_iterations": len(snapshots),
              "equal_across_ranks": all(torch.equal(everyone[0], w) for w in everyone),
              "weights_of_last_good_step": bool(snapshots) and torch.equal(weights, snapshots[-1])}
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    return result


def main(out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    train_with_nan_on_rank_1(out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
