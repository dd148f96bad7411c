"""Train :class:`~hessframe_molecules.model.HessianNet` on the GFN2-xTB data set.

The loss is a weighted sum of mean absolute errors, each divided by a scale
fitted on the training split so the terms are comparable:

    L = w_E · |ΔE|/N / σ_F + w_F · |ΔF| / σ_F + w_H · |ΔH| / σ_H
        + w_λ · |vᵀ H_pred v − λ| / σ_H,

with E per atom, F the force components, H the entries of the predicted 3×3
blocks (every atom and every pair within the cutoff), σ_F the RMS force and
σ_H the RMS Hessian block entry. The optional last term compares the predicted
Hessian's Rayleigh quotients with the reference eigenvalues λ on the
reference's lowest vibrational eigenvectors v (translations and rotations
projected out).

Checkpoints are written atomically after every epoch and hold the model,
optimizer, learning-rate schedule, epoch and history. The order of the
training geometries in epoch e is a permutation drawn from a generator seeded
with ``seed + e``, so a run resumed from a checkpoint continues exactly as an
uninterrupted one would.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the script joins a gloo process
group, wraps the model in DistributedDataParallel and gives rank r the
geometries r, r + W, r + 2W, ... of each epoch's permutation; rank 0 validates
and writes the checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch_geometric.data import Batch, Data

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.data import load_graphs
from hessframe_molecules.model import SUPPORTED_NUMBERS, HessianNet, HessianNetConfig

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        data_dir: Data-set folder (``manifest.json`` and ``shards/``).
        out_dir: Folder of ``checkpoint.pt`` (every epoch) and ``weights.pt``
            (the model with the lowest validation loss).
        epochs: Total epochs; a resumed run stops at the same total.
        batch_size: Geometries per optimiser step (per process under torchrun).
        learning_rate: Initial Adam learning rate, decayed to 5 % by a cosine.
        weight_energy, weight_forces, weight_hessian, weight_eigen: Loss weights.
        eigen_modes: Lowest reference eigenmodes per geometry in the eigen loss.
        max_geometries_per_molecule: Use only the first geometries of each
            molecule (None: all).
        max_minutes: Stop after the epoch during which this much wall time
            (of this invocation) has passed; the checkpoint allows resuming.
        seed: Seed of the initial weights and of the epoch permutations.
        model: Hyperparameters of the network.
    """

    data_dir: str
    out_dir: str
    epochs: int = 100
    batch_size: int = 8
    learning_rate: float = 3e-3
    weight_energy: float = 1.0
    weight_forces: float = 1.0
    weight_hessian: float = 1.0
    weight_eigen: float = 0.0
    eigen_modes: int = 3
    max_geometries_per_molecule: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    model: HessianNetConfig = dataclasses.field(default_factory=HessianNetConfig)


def fit_normalisation(graphs: list[Data]) -> dict[str, Any]:
    """Fit per-element reference energies (least squares), the RMS force and RMS Hessian entry."""
    counts = np.zeros((len(graphs), len(SUPPORTED_NUMBERS)))
    energies = np.zeros(len(graphs))
    for row, graph in enumerate(graphs):
        for column, number in enumerate(SUPPORTED_NUMBERS):
            counts[row, column] = int((graph.numbers == number).sum())
        energies[row] = float(graph.energy)
    atomic_energies, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    forces = torch.cat([graph.forces.reshape(-1) for graph in graphs])
    blocks = torch.cat(
        [torch.cat([g.hessian_diagonal.reshape(-1), g.hessian_pairs.reshape(-1)]) for g in graphs]
    )
    return {
        "atomic_energies_ev": torch.as_tensor(atomic_energies, dtype=torch.float64),
        "energy_scale_ev": float(forces.pow(2).mean().sqrt()),
        "hessian_scale": float(blocks.pow(2).mean().sqrt()),
    }


def batch_losses(
    model: torch.nn.Module, batch: Batch, config: TrainConfig, scales: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Return the loss terms (normalised MAEs) and their weighted ``total`` on one batch."""
    positions = batch.pos.detach().requires_grad_(True)
    output = model(
        batch.numbers,
        positions,
        batch.edge_index,
        batch.batch,
        num_graphs=batch.num_graphs,
        compute_forces=True,
        create_graph=True,
    )
    atoms_per_graph = torch.bincount(batch.batch, minlength=batch.num_graphs).to(positions.dtype)
    energy_error = (output["energy"].double() - batch.energy).float() / atoms_per_graph
    terms = {
        "energy": energy_error.abs().mean() / scales["forces"],
        "forces": (output["forces"] - batch.forces).abs().mean() / scales["forces"],
        "hessian": torch.cat(
            [
                (output["hessian_diagonal"] - batch.hessian_diagonal).reshape(-1),
                (output["hessian_pairs"] - batch.hessian_pairs).reshape(-1),
            ]
        )
        .abs()
        .mean()
        / scales["hessian"],
    }
    total = (
        config.weight_energy * terms["energy"]
        + config.weight_forces * terms["forces"]
        + config.weight_hessian * terms["hessian"]
    )
    if config.weight_eigen > 0:
        terms["eigen"] = _eigen_loss(output, batch) / scales["hessian"]
        total = total + config.weight_eigen * terms["eigen"]
    terms["total"] = total
    return terms


def _eigen_loss(output: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """Return the mean |vᵀ H_pred v − λ| over the reference's lowest modes v."""
    modes = batch.eigen_modes  # (N, k, 3)
    receiver, sender = batch.edge_index
    diagonal = torch.einsum("nka,nab,nkb->nk", modes, output["hessian_diagonal"], modes)
    pairs = torch.einsum("eka,eab,ekb->ek", modes[receiver], output["hessian_pairs"], modes[sender])
    quotient = torch.zeros(batch.num_graphs, modes.shape[1], dtype=modes.dtype).index_add(
        0, batch.batch, diagonal
    )
    quotient = quotient.index_add(0, batch.batch[receiver], pairs)
    return (quotient - batch.eigen_values).abs().mean()


def _epoch_order(num: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num, generator=generator)


def _batches(graphs: list[Data], order: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size].tolist()
        yield Batch.from_data_list([graphs[index] for index in chunk])


@torch.no_grad()
def _validation_loss(
    model: HessianNet, graphs: list[Data], config: TrainConfig, scales: dict[str, float]
) -> dict[str, float]:
    """Return validation MAEs in physical units (eV/atom, eV/Å, eV/Å²) and the weighted loss."""
    model.eval()
    sums = {"energy": 0.0, "forces": 0.0, "hessian": 0.0, "total": 0.0}
    weights = {"energy": 0.0, "forces": 0.0, "hessian": 0.0, "total": 0.0}
    for batch in _batches(graphs, torch.arange(len(graphs)), 16):
        with torch.enable_grad():
            terms = batch_losses(model, batch, config, scales)
        count = batch.num_graphs
        sums["energy"] += float(terms["energy"]) * scales["forces"] * count
        sums["forces"] += float(terms["forces"]) * scales["forces"] * count
        sums["hessian"] += float(terms["hessian"]) * scales["hessian"] * count
        sums["total"] += float(terms["total"]) * count
        for key in weights:
            weights[key] += count
    model.train()
    return {key: sums[key] / max(weights[key], 1) for key in sums}


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def check_train_config(config: TrainConfig) -> None:
    """Raise InvalidArgumentError for settings no run can use."""
    if config.epochs < 1:
        raise InvalidArgumentError(f"epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {config.batch_size}")
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise InvalidArgumentError(
            f"learning_rate must be a finite positive number, got {config.learning_rate}"
        )
    for name in ("weight_energy", "weight_forces", "weight_hessian", "weight_eigen"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {value}")


def train(
    config: TrainConfig, progress: Callable[[dict[str, Any]], Any] | None = None
) -> dict[str, Any]:
    """Train (or resume training) and return the history and the best validation metrics.

    Args:
        config: The run's settings.
        progress: Called after every epoch with its record: ``epoch``,
            ``seconds``, ``learning_rate``, ``train`` (loss terms) and, on
            rank 0 with a validation split, ``validation`` (MAEs in eV/atom,
            eV/Å and eV/Å², and the loss).

    Returns:
        ``{"history": [...], "best": {...}, "seconds": float, "stopped_early": bool}``.
    """
    check_train_config(config)
    rank, world = _distributed()
    started = time.perf_counter()
    out_dir = Path(config.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    eigen_modes = config.eigen_modes if config.weight_eigen > 0 else 0
    cutoff = config.model.cutoff_a
    train_graphs = load_graphs(
        Path(config.data_dir),
        "train",
        cutoff,
        eigen_modes=eigen_modes,
        max_geometries_per_molecule=config.max_geometries_per_molecule,
    )
    validation_graphs = load_graphs(
        Path(config.data_dir),
        "validation",
        cutoff,
        eigen_modes=eigen_modes,
        max_geometries_per_molecule=config.max_geometries_per_molecule,
    )
    if not train_graphs:
        raise InvalidArgumentError(f"data set {config.data_dir!r} has no training geometries")
    logger.info(
        "%d training and %d validation geometries", len(train_graphs), len(validation_graphs)
    )

    normalisation = fit_normalisation(train_graphs)
    scales = {"forces": normalisation["energy_scale_ev"], "hessian": normalisation["hessian_scale"]}
    model = HessianNet(config.model, **normalisation)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda epoch: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs)),
    )
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"validation_total": math.inf}
    start_epoch = 0

    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"]["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
        logger.info("resuming from %s after epoch %d", checkpoint_path, start_epoch)

    wrapped: torch.nn.Module = model
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)

    stopped_early = False
    model.train()
    for epoch in range(start_epoch, config.epochs):
        epoch_started = time.perf_counter()
        order = _epoch_order(len(train_graphs), config.seed, epoch)[rank::world]
        sums: dict[str, float] = {}
        steps = 0
        for batch in _batches(train_graphs, order, config.batch_size):
            terms = batch_losses(wrapped, batch, config, scales)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            steps += 1
        schedule.step()
        train_terms = {key: value / max(steps, 1) for key, value in sums.items()}
        if world > 1:
            reduced = torch.tensor([train_terms[key] for key in sorted(train_terms)])
            dist.all_reduce(reduced)
            train_terms = dict(zip(sorted(train_terms), (reduced / world).tolist(), strict=True))

        record = {
            "epoch": epoch + 1,
            "seconds": time.perf_counter() - epoch_started,
            "learning_rate": optimizer.param_groups[0]["lr"],
            "train": train_terms,
        }
        if rank == 0:
            if validation_graphs:
                record["validation"] = _validation_loss(model, validation_graphs, config, scales)
                total = record["validation"]["total"]
            else:
                total = train_terms["total"]
            if total < best["validation_total"]:
                best = {"validation_total": total, "epoch": epoch + 1, **record}
                _save_atomic(
                    {
                        "model": model.checkpoint(),
                        "train_config": _config_dict(config),
                        "best": best,
                    },
                    out_dir / WEIGHTS,
                )
            history.append(record)
            _save_atomic(
                {
                    "model": model.checkpoint(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "epoch": epoch + 1,
                    "history": history,
                    "best": best,
                    "train_config": _config_dict(config),
                },
                checkpoint_path,
            )
            logger.info(
                "epoch %d/%d %.0f s: train loss %.4f (E %.3f F %.3f H %.3f), validation %s",
                epoch + 1,
                config.epochs,
                record["seconds"],
                train_terms["total"],
                train_terms["energy"],
                train_terms["forces"],
                train_terms["hessian"],
                _format_validation(record.get("validation")),
            )
        if world > 1:
            dist.barrier()
        if progress is not None:
            progress(record)
        elapsed_minutes = (time.perf_counter() - started) / 60
        if config.max_minutes is not None and elapsed_minutes >= config.max_minutes:
            stopped_early = epoch + 1 < config.epochs
            logger.info("stopping after %.1f minutes at epoch %d", elapsed_minutes, epoch + 1)
            break
    return {
        "history": history,
        "best": best,
        "seconds": time.perf_counter() - started,
        "stopped_early": stopped_early,
    }


def _format_validation(metrics: dict[str, float] | None) -> str:
    if metrics is None:
        return "none"
    return (
        f"E {metrics['energy']:.4f} eV/atom, F {metrics['forces']:.4f} eV/Å, "
        f"H {metrics['hessian']:.4f} eV/Å², loss {metrics['total']:.4f}"
    )


def _config_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
