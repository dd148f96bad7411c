"""Fixtures of the molecules plugin's tests: small networks and a tiny copy of the data set."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch
from hessframe_molecules.model import HessianNet, HessianNetConfig
from hessframe_molecules.paths import DATASET_DIR

#: A network small enough that tests build and differentiate it in well under a second.
TINY_CONFIG = HessianNetConfig(
    num_scalars=8,
    num_vectors=2,
    num_tensors=2,
    num_layers=2,
    radial_hidden=8,
    pair_scalars=4,
    pair_vectors=2,
    pair_tensors=2,
)


def pytest_configure(config: pytest.Config) -> None:
    # The networks and molecules are small, so a second intra-op thread only
    # adds scheduling overhead on a loaded machine.
    torch.set_num_threads(1)


@functools.cache
def tiny_network(sum_rule: bool = False, seed: int = 0) -> HessianNet:
    """Return an untrained float64 network with random weights and a Hessian scale of 10.

    Networks are cached because e3nn's code generation makes building one take
    seconds; tests must not train or modify them.
    """
    torch.manual_seed(seed)
    config = HessianNetConfig(**{**TINY_CONFIG.__dict__, "sum_rule": sum_rule})
    return HessianNet(config, energy_scale_ev=1.0, hessian_scale=10.0).double().eval()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder with three training, one validation and one test molecule

    The shards are copies of the shipped ones.
    """
    manifest = json.loads((DATASET_DIR / "manifest.json").read_text())
    wanted = {"train": 3, "validation": 1, "test": 1}
    chosen = []
    for entry in sorted(manifest["molecules"], key=lambda item: item["num_atoms"]):
        if wanted.get(entry["split"], 0) > 0 and entry["num_atoms"] >= 3:
            wanted[entry["split"]] -= 1
            chosen.append(entry)
    folder = tmp_path_factory.mktemp("tiny-dataset")
    (folder / "shards").mkdir()
    for entry in chosen:
        shutil.copy(DATASET_DIR / entry["shard"], folder / entry["shard"])
    (folder / "manifest.json").write_text(json.dumps({**manifest, "molecules": chosen}))
    return folder
