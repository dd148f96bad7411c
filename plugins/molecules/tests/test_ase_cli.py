"""The optimize, ts and vib commands: outputs, JSON summaries and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import read, write
from click.testing import CliRunner
from hessframe_molecules.cli import molecules_group
from hessframe_molecules.paths import WEIGHTS_PATH


def _invoke(*args: str):
    return CliRunner().invoke(molecules_group, list(args), catch_exceptions=False)


def test_vib_writes_summary_and_trajectory(tmp_path):
    out = tmp_path / "vib"
    result = _invoke("vib", "H2O", "--hessian", "xtb-fd", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "vib.json").read_text())
    assert summary["converged"]
    assert len(summary["frequencies_cm1"]) == 3
    assert 1400 < summary["frequencies_cm1"][0] < 1700  # the H-O-H bend
    assert summary["zpe_ev"] == pytest.approx(
        0.5 * sum(summary["frequencies_cm1"]) * 1.23984e-4, rel=1e-4
    )
    images = read(out / "vib-relax.traj", index=":")
    assert images[-1].get_potential_energy() == pytest.approx(summary["energy_ev"])
    assert not list(out.glob(".*tmp"))


def test_optimize_reads_structure_file(tmp_path):
    atoms = molecule("NH3")
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    path = tmp_path / "nh3.xyz"
    write(path, atoms)
    out = tmp_path / "opt"
    result = _invoke("optimize", str(path), "--hessian", "xtb-fd", "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "optimize.json").read_text())
    assert summary["converged"]
    assert summary["fmax"] < 0.01
    assert summary["hessian_calls"] == 1
    assert summary["hessian_gradient_calls"] == 6 * 4
    assert summary["num_imaginary"] == 0
    assert "converged:    True" in result.stdout


def test_ts_finds_hcn_saddle_and_checks_irc(tmp_path):
    guess = Atoms("CNH", positions=[[0.0, 0.0, 0.0], [1.18, 0.0, 0.0], [0.5, 1.1, 0.0]])
    path = tmp_path / "guess.xyz"
    write(path, guess)
    out = tmp_path / "ts"
    result = _invoke("ts", str(path), "--hessian", "xtb-fd", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["success"]
    assert summary["num_imaginary"] == 1
    assert summary["irc"]["forward_converged"]
    assert summary["irc"]["reverse_converged"]
    assert len(read(out / "irc-ends.traj", index=":")) == 3


@pytest.mark.skipif(not WEIGHTS_PATH.is_file(), reason=f"shipped weights {WEIGHTS_PATH} missing")
def test_ts_predicted_hessian_checks_on_xtb(tmp_path):
    guess = Atoms("CNH", positions=[[0.0, 0.0, 0.0], [1.18, 0.0, 0.0], [0.5, 1.1, 0.0]])
    path = tmp_path / "guess.xyz"
    write(path, guess)
    result = _invoke("ts", str(path), "--out", str(tmp_path / "ts"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["hessian"] == "molecules-predicted"
    assert summary["hessian_gradient_calls"] == 0
    assert summary["success"]
    assert summary["frequencies_cm1"][0] < -1000
    assert set(map(tuple, (summary["irc"]["forward_bonds"], summary["irc"]["reverse_bonds"]))) == {
        ("C-H", "C-N"),
        ("C-N", "H-N"),
    }


def test_unconverged_run_writes_results_exits_1(tmp_path):
    out = tmp_path / "opt"
    result = _invoke("optimize", "CH3OH", "--hessian", "none", "--steps", "1", "--out", str(out))
    assert result.exit_code == 1
    assert "not converged: final fmax" in result.stderr
    summary = json.loads((out / "optimize.json").read_text())
    assert not summary["converged"]
    assert summary["steps"] == 1


def test_unknown_structure_is_rejected(tmp_path):
    result = _invoke("vib", "NOT-A-MOLECULE", "--hessian", "xtb-fd", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "neither an existing file nor a molecule of ASE's G2" in result.output


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.xyz"
    path.write_text("")
    result = _invoke("optimize", str(path), "--hessian", "xtb-fd", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "is an empty file" in result.output


def test_unreadable_file_is_rejected(tmp_path):
    path = tmp_path / "broken.xyz"
    path.write_text("3\ncomment\nC 0 0\n")
    result = _invoke("optimize", str(path), "--hessian", "xtb-fd", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "could not be read by ase.io.read" in result.output


def test_model_rejects_unsupported_element(tmp_path):
    result = _invoke("optimize", "SiH4", "--calculator", "model", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "['Si']" in result.output


def test_network_hessian_rejects_element_early(tmp_path):
    # The default --hessian predicted runs the network even with --calculator xtb.
    path = tmp_path / "h2s.xyz"
    write(path, Atoms("SH2", positions=[[0, 0, 0], [1.34, 0, 0], [-0.3, 1.3, 0]]))
    out = tmp_path / "o"
    result = _invoke("vib", str(path), "--out", str(out))
    assert result.exit_code == 2
    assert "['S']" in result.output
    assert "--hessian predicted" in result.output
    assert not out.exists() or not list(out.iterdir())


def test_ts_wrong_saddle_fails_check(tmp_path):
    # From the methane minimum, Sella in Cartesians ends at a point with two imaginary modes.
    out = tmp_path / "ts"
    result = _invoke("ts", "CH4", "--cartesian", "--no-irc", "--steps", "60", "--out", str(out))
    summary = json.loads((out / "ts.json").read_text())
    assert result.exit_code == 1
    assert summary["converged"]
    assert summary["num_imaginary"] == 2
    assert not summary["success"]
    assert "saddle check failed: Sella converged" in result.stderr
    assert "2 imaginary frequencies" in result.stderr
    assert "not converged" not in result.stderr


def test_far_structure_warning_names_atoms(tmp_path):
    atoms = molecule("H2O")
    atoms.positions[2] = atoms.positions[0] + [0.0, 0.45, 0.0]
    path = tmp_path / "compressed-water.xyz"
    write(path, atoms)
    out = tmp_path / "o"
    result = _invoke("vib", str(path), "--hessian", "xtb-fd", "--no-optimize", "--out", str(out))
    assert result.exit_code == 0
    assert "warning" not in result.stderr  # xTB alone, so the network is not involved

    result = CliRunner().invoke(molecules_group, ["vib", str(path), "--out", str(out)])
    assert "outside the network's training data: atoms 0 (O) and 2 (H) are 0.45 Å apart" in (
        result.stderr
    )


def test_failed_write_keeps_previous_results(tmp_path, monkeypatch):
    from hessframe_molecules.ase_tools import jobs

    out = tmp_path / "opt"
    assert _invoke("optimize", "H2O", "--hessian", "xtb-fd", "--out", str(out)).exit_code == 0
    before = (out / "optimize.json").read_text()

    def failing_writer(images):
        def write_trajectory(path):
            path.write_text("partial")
            raise OSError("disk full")

        return write_trajectory

    monkeypatch.setattr(jobs, "_trajectory_writer", failing_writer)
    with pytest.raises(OSError, match="disk full"):
        _invoke("optimize", "NH3", "--hessian", "xtb-fd", "--out", str(out))
    assert (out / "optimize.json").read_text() == before
    assert read(out / "optimize.traj").get_chemical_formula() == "H2O"
    assert not list(out.glob(".*tmp"))
