"""The ``hessframe molecules`` commands.

``build-dataset``, ``train`` and ``evaluate`` (:mod:`hessframe_molecules.cli_model`)
make the GFN2-xTB data set and train and evaluate the Hessian network;
``optimize``, ``ts`` and ``vib`` (:mod:`hessframe_molecules.cli_ase`) put a
Hessian provider to work in ASE.
"""

from __future__ import annotations

import click

from hessframe_molecules import cli_ase, cli_model


@click.group("molecules")
def molecules_group() -> None:
    """Molecular Hessians: data, the Hessian network, ASE optimisation, TS search, vibrations."""


for _command in (*cli_model.COMMANDS, *cli_ase.COMMANDS):
    molecules_group.add_command(_command)
