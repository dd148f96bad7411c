"""An equivariant network that predicts molecular energies, forces and Hessians directly.

The design follows Burger et al., "Shoot from the HIP: Hessian Interatomic
Potentials without derivatives" (2025): the Hessian is assembled from l ≤ 2
equivariant features instead of differentiating an energy model twice.

Architecture (e3nn, features ``32x0e + 8x1o + 8x2e``):

- atoms of the elements in :data:`SUPPORTED_ELEMENTS` are embedded by a one-hot
  code; every ordered atom pair (i, j) closer than the cutoff (5 Å) is an edge,
  described by the spherical harmonics Y^l(r̂_ij), l = 0, 1, 2, and Bessel radial
  functions times a polynomial envelope that goes smoothly to zero at the cutoff;
- three NequIP-style interaction blocks: a tensor product of neighbour features
  with Y(r̂_ij), weighted by an MLP of the radial functions, summed over
  neighbours, a self-interaction and a gated nonlinearity;
- energy: a sum of per-atom scalars plus per-element reference energies, and
  forces −∂E/∂x by automatic differentiation, so that the autodiff Hessian of
  the same network is an honest baseline;
- Hessian head: a 3×3 block for every atom (from the ``0e ⊕ 2e`` part of a
  linear map of its features, so the block is symmetric) and for every ordered
  atom pair within the cutoff (from a tensor product of both atoms' features,
  coupled again to Y(r̂_ij); its ``0e ⊕ 1e ⊕ 2e`` output is the Clebsch-Gordan
  decomposition 1 ⊗ 1 = 0 ⊕ 1 ⊕ 2 of a rank-2 Cartesian tensor). Pair blocks
  are made symmetric exactly as H_ij = (B_ij + B_jiᵀ)/2, and the blocks rotate
  as R H Rᵀ because every piece is built from irreps. Pairs beyond the cutoff
  get zero blocks.
- With ``sum_rule=True`` the translational sum rule Σ_j H_ij = 0 is
  exact: each diagonal block is H_ii = −Σ_{j≠i} H_ij. For H_ii to stay
  symmetric the pair blocks are then restricted to symmetric ones (``0e ⊕ 2e``).

Contract relied on by the rest of the plugin (and kept stable):

- :data:`SUPPORTED_ELEMENTS`: the chemical symbols the network was trained on.
- :func:`check_molecule` validates an ``ase.Atoms``: an unsupported element
  (the error names it and the supported set), atoms closer than 0.1 Å, NaN or
  infinite positions, a periodic cell and an empty structure each raise
  :class:`hessframe.errors.InvalidArgumentError`. A single atom is accepted
  and gets a zero Hessian (and zero forces).
- :func:`load_pretrained` ``(path=None)`` returns a :class:`HessianNet` with the
  shipped weights (or those of ``path``), in evaluation mode.
- :meth:`HessianNet.predict` ``(atoms) -> dict`` with ``"energy"`` (float, eV),
  ``"forces"`` ((N, 3) numpy, eV/Å) and ``"hessian"`` ((3N, 3N) numpy, eV/Å²,
  the direct head's Hessian).
- :meth:`HessianNet.predicted_provider` and :meth:`HessianNet.autodiff_provider`
  return core curvature providers over the 3N Cartesian coordinates (atom-major)
  whose ``to_dense()`` is the Hessian in eV/Å².
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from e3nn import o3
from e3nn.io import CartesianTensor
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.validation import check_atoms

logger = logging.getLogger(__name__)

#: Chemical symbols the network was trained on, in the order of its one-hot code.
SUPPORTED_ELEMENTS = ("H", "C", "N", "O")
SUPPORTED_NUMBERS = (1, 6, 7, 8)

_SH_IRREPS = o3.Irreps("1x0e + 1x1o + 1x2e")


def check_molecule(atoms: Any, name: str = "atoms"):
    """Check that ``atoms`` is a molecule the network accepts; return it.

    Raises:
        InvalidArgumentError: see :func:`hessframe_molecules.validation.check_atoms`;
            elements outside :data:`SUPPORTED_ELEMENTS` are rejected.
    """
    return check_atoms(atoms, SUPPORTED_ELEMENTS, name)


@dataclass(frozen=True)
class HessianNetConfig:
    """Hyperparameters of :class:`HessianNet`.

    Attributes:
        cutoff_a: Radius (Å) within which atoms exchange messages and get pair blocks.
        num_basis: Number of Bessel radial functions.
        num_scalars, num_vectors, num_tensors: Multiplicities of 0e, 1o and 2e features.
        num_layers: Interaction blocks.
        radial_hidden: Width of the radial MLPs.
        pair_scalars, pair_vectors, pair_tensors: Multiplicities of the per-atom
            features that enter the pair-block tensor product.
        avg_num_neighbors: Divisor (its square root) of the neighbour sums.
        sum_rule: Enforce Σ_j H_ij = 0 exactly (see the module docstring).
    """

    cutoff_a: float = 5.0
    num_basis: int = 8
    num_scalars: int = 32
    num_vectors: int = 8
    num_tensors: int = 8
    num_layers: int = 3
    radial_hidden: int = 32
    pair_scalars: int = 8
    pair_vectors: int = 4
    pair_tensors: int = 4
    avg_num_neighbors: float = 8.0
    sum_rule: bool = False


class RadialBasis(nn.Module):
    """Bessel functions sin(nπr/r_c)/r times the polynomial envelope of DimeNet (p = 6).

    The envelope and its first two derivatives vanish at r_c, so energies and
    Hessian blocks go smoothly to zero there.
    """

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("frequencies", torch.arange(1, num_basis + 1) * math.pi / cutoff)

    def envelope(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.cutoff
        p = 6
        value = (
            1
            - (p + 1) * (p + 2) / 2 * x**p
            + p * (p + 2) * x ** (p + 1)
            - p * (p + 1) / 2 * x ** (p + 2)
        )
        return torch.where(x < 1, value, torch.zeros_like(value))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        bessel = math.sqrt(2 / self.cutoff) * torch.sin(self.frequencies * r[:, None]) / r[:, None]
        return bessel * self.envelope(r)[:, None]


def _uvu_tensor_product(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, keep: o3.Irreps):
    """Return a depthwise ('uvu') tensor product with Y onto the irreps in ``keep``."""
    kept = {ir for _, ir in keep}
    irreps_mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in kept:
                    instructions.append((i, j, len(irreps_mid), "uvu", True))
                    irreps_mid.append((mul, ir_out))
    return o3.TensorProduct(
        irreps_in,
        irreps_sh,
        o3.Irreps(irreps_mid),
        instructions,
        shared_weights=False,
        internal_weights=False,
    )


class Interaction(nn.Module):
    """One message-passing block: convolution with Y(r̂_ij), self-interaction, gate."""

    def __init__(
        self, irreps_in: o3.Irreps, config: HessianNetConfig, num_elements: int, residual: bool
    ) -> None:
        super().__init__()
        scalars = o3.Irreps(f"{config.num_scalars}x0e")
        gated = o3.Irreps(f"{config.num_vectors}x1o + {config.num_tensors}x2e")
        gates = o3.Irreps(f"{config.num_vectors + config.num_tensors}x0e")
        self.gate = Gate(scalars, [nn.functional.silu], gates, [torch.sigmoid], gated)
        self.irreps_out = self.gate.irreps_out
        self.residual = residual
        self.normaliser = 1 / math.sqrt(config.avg_num_neighbors)

        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.tensor_product = _uvu_tensor_product(irreps_in, _SH_IRREPS, self.gate.irreps_in)
        self.radial = FullyConnectedNet(
            [config.num_basis, config.radial_hidden, self.tensor_product.weight_numel],
            nn.functional.silu,
        )
        self.linear_out = o3.Linear(self.tensor_product.irreps_out, self.gate.irreps_in)
        self.self_interaction = o3.FullyConnectedTensorProduct(
            irreps_in, o3.Irreps(f"{num_elements}x0e"), self.gate.irreps_in
        )

    def forward(self, h, one_hot, sh, basis, receiver, sender):
        weights = self.radial(basis)
        messages = self.tensor_product(self.linear_in(h)[sender], sh, weights)
        summed = torch.zeros(
            h.shape[0], messages.shape[1], dtype=messages.dtype, device=messages.device
        ).index_add(0, receiver, messages)
        updated = self.gate(
            self.linear_out(summed * self.normaliser) + self.self_interaction(h, one_hot)
        )
        return h + updated if self.residual else updated


class HessianNet(nn.Module):
    """Equivariant energy, force and Hessian model (see the module docstring).

    Args:
        config: Hyperparameters.
        atomic_energies_ev: Reference energy (eV) of each element in
            :data:`SUPPORTED_ELEMENTS`, added per atom.
        energy_scale_ev: Scale (eV) of the per-atom energy outputs.
        hessian_scale: Scale (eV/Å²) of the Hessian head's outputs.
    """

    def __init__(
        self,
        config: HessianNetConfig | None = None,
        atomic_energies_ev: torch.Tensor | None = None,
        energy_scale_ev: float = 1.0,
        hessian_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.config = config or HessianNetConfig()
        config = self.config
        num_elements = len(SUPPORTED_ELEMENTS)
        if atomic_energies_ev is None:
            atomic_energies_ev = torch.zeros(num_elements, dtype=torch.float64)
        self.register_buffer("atomic_energies", torch.as_tensor(atomic_energies_ev).double())
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale_ev)))
        self.register_buffer("hessian_scale", torch.tensor(float(hessian_scale)))
        lookup = torch.full((max(SUPPORTED_NUMBERS) + 1,), -1, dtype=torch.long)
        lookup[list(SUPPORTED_NUMBERS)] = torch.arange(num_elements)
        self.register_buffer("element_index", lookup, persistent=False)

        self.radial_basis = RadialBasis(config.num_basis, config.cutoff_a)
        hidden = o3.Irreps(
            f"{config.num_scalars}x0e + {config.num_vectors}x1o + {config.num_tensors}x2e"
        )
        self.embedding = o3.Linear(
            o3.Irreps(f"{num_elements}x0e"), o3.Irreps(f"{config.num_scalars}x0e")
        )
        layers, irreps = [], self.embedding.irreps_out
        for index in range(config.num_layers):
            layer = Interaction(irreps, config, num_elements, residual=index > 0)
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        assert irreps == hidden, (irreps, hidden)

        self.energy_head = nn.Sequential(
            nn.Linear(config.num_scalars, config.num_scalars),
            nn.SiLU(),
            nn.Linear(config.num_scalars, 1),
        )

        self.diagonal_tensor = CartesianTensor("ij=ji")
        self.pair_tensor = CartesianTensor("ij=ji") if config.sum_rule else CartesianTensor("ij")
        self.diagonal_head = o3.Linear(hidden, self.diagonal_tensor)
        pair_irreps = o3.Irreps(
            f"{config.pair_scalars}x0e + {config.pair_vectors}x1o + {config.pair_tensors}x2e"
        )
        self.pair_left = o3.Linear(hidden, pair_irreps)
        self.pair_right = o3.Linear(hidden, pair_irreps)
        product_irreps = o3.Irreps(
            f"{2 * config.pair_scalars}x0e + {config.pair_vectors}x1o + "
            f"{config.pair_vectors}x1e + {config.pair_tensors}x2e"
        )
        self.pair_product = o3.FullyConnectedTensorProduct(pair_irreps, pair_irreps, product_irreps)
        self.pair_geometry = _uvu_tensor_product(product_irreps, _SH_IRREPS, self.pair_tensor)
        self.pair_radial = FullyConnectedNet(
            [config.num_basis, config.radial_hidden, self.pair_geometry.weight_numel],
            nn.functional.silu,
        )
        self.pair_head = o3.Linear(product_irreps + self.pair_geometry.irreps_out, self.pair_tensor)
        self.register_buffer(
            "diagonal_basis",
            self.diagonal_tensor.reduced_tensor_products().change_of_basis,
            persistent=False,
        )
        self.register_buffer(
            "pair_basis",
            self.pair_tensor.reduced_tensor_products().change_of_basis,
            persistent=False,
        )

    # ------------------------------------------------------------------
    # Graph

    @property
    def dtype(self) -> torch.dtype:
        return self.energy_scale.dtype

    def elements(self, numbers: torch.Tensor) -> torch.Tensor:
        """Return the one-hot element index of atomic numbers (must be supported)."""
        return self.element_index[numbers]

    def edges(self, positions: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Return the (2, E) ordered pairs (i, j), i ≠ j, of one graph batch within the cutoff."""
        with torch.no_grad():
            distances = torch.cdist(positions, positions)
            close = distances < self.config.cutoff_a
            close.fill_diagonal_(False)
            if batch is not None:
                close &= batch[:, None] == batch[None, :]
            return close.nonzero().T.contiguous()

    # ------------------------------------------------------------------
    # Forward

    def forward(
        self,
        numbers: torch.Tensor,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor | None = None,
        *,
        num_graphs: int = 1,
        compute_forces: bool = False,
        compute_hessian: bool = True,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Run the network on a batch of molecules.

        Args:
            numbers: (N,) atomic numbers.
            positions: (N, 3) positions (Å).
            edge_index: (2, E) ordered pairs (i, j) within the cutoff, both
                orders present, as returned by :meth:`edges`.
            batch: (N,) graph index of every atom; None means one graph.
            num_graphs: Number of graphs in the batch.
            compute_forces: Also return forces −∂E/∂x (eV/Å).
            compute_hessian: Also return the Hessian head's blocks.
            create_graph: Keep the graph of the forces (for training on them).

        Returns:
            ``energy`` (num_graphs,) in eV, and ``forces`` (N, 3) in eV/Å
            with ``compute_forces``. With ``compute_hessian`` also
            ``hessian_diagonal`` (N, 3, 3) and ``hessian_pairs`` (E, 3, 3) in
            eV/Å². Block e couples atom ``edge_index[0, e]`` (rows) with atom
            ``edge_index[1, e]`` (columns).
        """
        if batch is None:
            batch = torch.zeros(len(numbers), dtype=torch.long, device=numbers.device)
        if compute_forces and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)

        elements = self.elements(numbers)
        one_hot = nn.functional.one_hot(elements, len(SUPPORTED_ELEMENTS)).to(positions.dtype)
        receiver, sender = edge_index[0], edge_index[1]
        vectors = positions[sender] - positions[receiver]
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        sh = o3.spherical_harmonics(_SH_IRREPS, vectors, normalize=True, normalization="component")
        basis = self.radial_basis(lengths)

        h = self.embedding(one_hot)
        for layer in self.layers:
            h = layer(h, one_hot, sh, basis, receiver, sender)

        atom_energies = self.energy_head(h[:, : self.config.num_scalars]).squeeze(
            1
        ) * self.energy_scale + self.atomic_energies[elements].to(positions.dtype)
        energy = torch.zeros(num_graphs, dtype=positions.dtype, device=positions.device).index_add(
            0, batch, atom_energies
        )
        output = {"energy": energy}
        if compute_forces:
            (gradient,) = torch.autograd.grad(
                energy.sum(), positions, create_graph=create_graph or self.training
            )
            output["forces"] = -gradient
        if compute_hessian:
            diagonal, pairs = self._hessian_blocks(h, sh, basis, lengths, receiver, sender)
            output["hessian_diagonal"] = diagonal
            output["hessian_pairs"] = pairs
        return output

    def _hessian_blocks(self, h, sh, basis, lengths, receiver, sender):
        scale = self.hessian_scale.to(h.dtype)
        left = self.pair_left(h)[receiver]
        right = self.pair_right(h)[sender]
        product = self.pair_product(left, right)
        geometric = self.pair_geometry(product, sh, self.pair_radial(basis))
        irreps = self.pair_head(torch.cat([product, geometric], dim=1))
        envelope = self.radial_basis.envelope(lengths)[:, None, None]
        raw = torch.einsum("kij,ek->eij", self.pair_basis.to(h.dtype), irreps) * envelope * scale
        pairs = 0.5 * (raw + raw[_reverse_edges(receiver, sender, len(h))].transpose(1, 2))

        if self.config.sum_rule:
            diagonal = -torch.zeros(len(h), 3, 3, dtype=h.dtype, device=h.device).index_add(
                0, receiver, pairs
            )
        else:
            diagonal = (
                torch.einsum("kij,nk->nij", self.diagonal_basis.to(h.dtype), self.diagonal_head(h))
                * scale
            )
        return diagonal, pairs

    # ------------------------------------------------------------------
    # One molecule

    def _inputs(self, atoms) -> tuple[torch.Tensor, torch.Tensor]:
        check_molecule(atoms)
        device = self.energy_scale.device
        numbers = torch.as_tensor(atoms.numbers, dtype=torch.long, device=device)
        positions = torch.as_tensor(atoms.positions, dtype=self.dtype, device=device)
        return numbers, positions

    def energy_function(self, atoms):
        """Return f(flat positions (3N,)) -> energy (eV) of ``atoms``, differentiable twice."""
        numbers, positions = self._inputs(atoms)
        edge_index = self.edges(positions)

        def energy(flat: torch.Tensor) -> torch.Tensor:
            output = self(numbers, flat.view(-1, 3), edge_index, compute_hessian=False)
            return output["energy"][0]

        return energy, positions.reshape(-1)

    def hessian_blocks(self, atoms) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the head's Hessian of ``atoms`` as a block list (index_i, index_j, blocks).

        Diagonal blocks come first, then pair blocks; a single atom gets a
        zero 3×3 block.
        """
        numbers, positions = self._inputs(atoms)
        n = len(numbers)
        if n == 1:
            zero = torch.zeros(1, dtype=torch.long, device=positions.device)
            return zero, zero, torch.zeros(1, 3, 3, dtype=positions.dtype, device=positions.device)
        edge_index = self.edges(positions)
        with torch.no_grad():
            output = self(numbers, positions, edge_index)
        atoms_index = torch.arange(n, device=positions.device)
        return (
            torch.cat([atoms_index, edge_index[0]]),
            torch.cat([atoms_index, edge_index[1]]),
            torch.cat([output["hessian_diagonal"], output["hessian_pairs"]]),
        )

    def predict(self, atoms) -> dict[str, Any]:
        """Return ``energy`` (eV), ``forces`` ((N, 3), eV/Å) and the head's ``hessian``.

        The Hessian is a (3N, 3N) numpy array in eV/Å², atom-major.
        """
        numbers, positions = self._inputs(atoms)
        n = len(numbers)
        edge_index = self.edges(positions)
        with torch.enable_grad():
            output = self(
                numbers, positions, edge_index, compute_forces=True, compute_hessian=False
            )
        index_i, index_j, blocks = self.hessian_blocks(atoms)
        dense = torch.zeros(n, n, 3, 3, dtype=blocks.dtype, device=blocks.device)
        dense[index_i, index_j] = blocks
        forces = output["forces"].detach()
        if n == 1:
            forces = torch.zeros_like(forces)
        return {
            "energy": float(output["energy"][0].detach()),
            "forces": forces.cpu().numpy().astype(np.float64),
            "hessian": dense.permute(0, 2, 1, 3)
            .reshape(3 * n, 3 * n)
            .cpu()
            .numpy()
            .astype(np.float64),
        }

    def predicted_provider(self, atoms, *, dtype: torch.dtype | None = None):
        """Return the head's Hessian of ``atoms`` as a core ``PredictedHessian`` (blocks layout)."""
        from hessframe.curvature.predicted import PredictedHessian

        check_molecule(atoms)
        return PredictedHessian(
            self.hessian_blocks,
            atoms,
            layout="blocks",
            size=3 * len(atoms),
            dtype=dtype or self.dtype,
            device=self.energy_scale.device,
        )

    def autodiff_provider(self, atoms, **kwargs: Any):
        """Return the Hessian of the network's energy at ``atoms`` as a core ``AutodiffHessian``.

        ``**kwargs`` go to :class:`hessframe.curvature.autodiff.AutodiffHessian`
        (``mode``, ``dense_chunk_size``, ``retain_graph``). A single atom has
        no edges, so its energy does not depend on its position and the
        Hessian is zero.
        """
        from hessframe.curvature.autodiff import AutodiffHessian

        energy, point = self.energy_function(atoms)
        if len(atoms) == 1:
            offset = energy(point).detach()

            def energy(flat: torch.Tensor) -> torch.Tensor:
                return offset + 0.0 * flat.sum()

        return AutodiffHessian(energy, point, **kwargs)

    # ------------------------------------------------------------------
    # Saving

    def checkpoint(self) -> dict[str, Any]:
        """Return what :func:`load_model` needs: the configuration and the state dict."""
        return {"config": dataclasses.asdict(self.config), "state_dict": self.state_dict()}


def _reverse_edges(receiver: torch.Tensor, sender: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Return, for every edge (i, j), the index of the edge (j, i)."""
    keys = receiver * num_nodes + sender
    order = torch.argsort(keys)
    position = torch.searchsorted(keys[order], sender * num_nodes + receiver)
    return order[position]


def build_model(checkpoint: dict[str, Any]) -> HessianNet:
    """Return a :class:`HessianNet` built from :meth:`HessianNet.checkpoint`'s output."""
    config = HessianNetConfig(**checkpoint["config"])
    model = HessianNet(config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def load_model(path: str | Path) -> HessianNet:
    """Load a :class:`HessianNet` from a weights file written by training.

    Raises:
        InvalidArgumentError: ``path`` does not exist or is not a weights file.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"weights file {str(path)!r} not found; pass an existing file")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise InvalidArgumentError(
            f"{str(path)!r} is not a HessianNet weights file (no 'model' entry)"
        )
    return build_model(checkpoint["model"])


_PRETRAINED: dict[str, HessianNet] = {}


def load_pretrained(path: str | Path | None = None) -> HessianNet:
    """Return the network with the shipped weights, or with those of ``path``.

    The shipped model is loaded once per process and shared; it is in
    evaluation mode and should not be trained in place.

    Raises:
        InvalidArgumentError: ``path`` (or the shipped file) does not exist.
    """
    from hessframe_molecules.paths import WEIGHTS_PATH

    resolved = str(Path(path) if path is not None else WEIGHTS_PATH)
    if resolved not in _PRETRAINED:
        _PRETRAINED[resolved] = load_model(resolved)
    return _PRETRAINED[resolved]
