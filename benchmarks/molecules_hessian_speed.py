"""Time and peak memory of one molecular Hessian against the number of atoms.

Three ways to get the (3N, 3N) Hessian of the same molecule, side by side:

- ``predicted``: the network's direct Hessian head (one forward pass),
  ``molecules-predicted`` provider, ``to_dense()``;
- ``autodiff``: the Hessian of the same network's energy, ``molecules-autodiff``
  provider, ``to_dense()`` (the core's vectorised forward-over-reverse route,
  ``torch.func.vmap`` over Hessian-vector products);
- ``xtb-fd``: GFN2-xTB through tblite, central differences of analytic gradients
  (6N gradient calls), ``xtb-finite-difference`` provider.

Molecules: linear alkanes CₙH₂ₙ₊₂ embedded by RDKit (5 to 59 atoms) and S22
complexes from ASE (24 and 30 atoms). Sizes above 17 atoms lie outside the
training data; only speed and memory are measured here.

Each (method, molecule) runs in a fresh Python process, so that memory freed by
one run cannot hide another's peak. In that process the setup (imports, model,
calculator) runs first; then one untimed Hessian measures the peak resident
memory above the resident memory before it (the larger of a 1 ms sampling
thread and ``ru_maxrss``) and pays one-time costs; then timed Hessians
(``--repeats`` for the predicted head, one for the slower methods) give the
median wall time.

Targets, at 20 atoms and more: the predicted head at least 10 times faster than
the autodiff Hessian and than xTB finite differences, with less peak memory
than autodiff.

Run: ``python benchmarks/molecules_hessian_speed.py`` (about ten minutes on
two cores); ``--quick`` runs two small molecules only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment_lines, markdown_table, progress, verdict, write_report

RESULTS_NAME = "molecules_speed.md"
METHODS = ("predicted", "autodiff", "xtb-fd")
ALKANE_CARBONS = (1, 3, 6, 10, 13, 16, 19)
S22_NAMES = ("Benzene_dimer_parallel_displaced", "Adenine-thymine_Watson-Crick_complex")


def molecule(name: str):
    """Return the ase.Atoms of an alkane ``C<n>`` or an S22 complex ``s22:<name>``."""
    if name.startswith("s22:"):
        from ase.collections import s22

        return s22[name[4:]]
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("C" * int(name[1:])))
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = 0
    AllChem.EmbedMolecule(mol, parameters)
    AllChem.MMFFOptimizeMolecule(mol)
    return Atoms(
        numbers=[atom.GetAtomicNum() for atom in mol.GetAtoms()],
        positions=mol.GetConformer().GetPositions(),
    )


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(method: str, name: str, repeats: int) -> dict:
    """Run in a child process: set up ``method`` for molecule ``name``, then measure it."""
    import resource

    import torch

    torch.set_num_threads(1)
    from hessframe_molecules.model import load_pretrained

    from hessframe.plugins import get_plugin_manager

    atoms = molecule(name)
    manager = get_plugin_manager()
    provider_name = {
        "predicted": "molecules-predicted",
        "autodiff": "molecules-autodiff",
        "xtb-fd": "xtb-finite-difference",
    }[method]
    model = load_pretrained() if method != "xtb-fd" else None
    kwargs = {"model": model} if model is not None else {}
    size = 3 * len(atoms)

    def hessian() -> None:
        manager.create_provider(provider_name, atoms, **kwargs).to_dense(max_size=size)

    before = _resident_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [before]
    running = [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _resident_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    hessian()
    running[0] = False
    sampler.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_bytes = peak[0] - before
    if maxrss_after > maxrss_before:
        peak_bytes = max(peak_bytes, maxrss_after - before)

    # The first Hessian pays one-time costs (tracing, allocator growth), so
    # only the following ones are timed.
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        hessian()
        times.append(time.perf_counter() - started)
    return {
        "method": method,
        "molecule": name,
        "atoms": len(atoms),
        "seconds": statistics.median(times),
        "runs": len(times),
        "peak_mib": peak_bytes / 2**20,
    }


def run_child(method: str, name: str, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", method, name, "--repeats", str(repeats)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{method} on {name} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _ratio(value: float) -> str:
    return f"{value:.1f}×" if value < 10 else f"{value:.0f}×"


def report(results: list[dict], quick: bool) -> str:
    by_key = {(r["molecule"], r["method"]): r for r in results}
    names = sorted({r["molecule"] for r in results}, key=lambda n: by_key[(n, METHODS[0])]["atoms"])
    rows, passes = [], []
    for name in names:
        predicted = by_key[(name, "predicted")]
        autodiff = by_key[(name, "autodiff")]
        xtb = by_key[(name, "xtb-fd")]
        speedup_autodiff = autodiff["seconds"] / predicted["seconds"]
        speedup_xtb = xtb["seconds"] / predicted["seconds"]
        memory_ratio = (
            autodiff["peak_mib"] / predicted["peak_mib"]
            if predicted["peak_mib"] > 0
            else float("inf")
        )
        target = ""
        if predicted["atoms"] >= 20:
            met = (
                speedup_autodiff >= 10
                and speedup_xtb >= 10
                and autodiff["peak_mib"] > predicted["peak_mib"]
            )
            passes.append(met)
            target = verdict(met)
        rows.append(
            [
                name,
                predicted["atoms"],
                f"{predicted['seconds'] * 1e3:.1f}",
                f"{autodiff['seconds'] * 1e3:.0f}",
                f"{xtb['seconds'] * 1e3:.0f}",
                _ratio(speedup_autodiff),
                _ratio(speedup_xtb),
                f"{predicted['peak_mib']:.1f}",
                f"{autodiff['peak_mib']:.1f}",
                f"{xtb['peak_mib']:.1f}",
                f"{memory_ratio:.1f}×" if memory_ratio != float("inf") else "n/a",
                target,
            ]
        )
    header = [
        "molecule",
        "atoms",
        "predicted (ms)",
        "autodiff (ms)",
        "xTB FD (ms)",
        "autodiff / predicted",
        "xTB FD / predicted",
        "predicted peak (MiB)",
        "autodiff peak (MiB)",
        "xTB FD peak (MiB)",
        "autodiff / predicted memory",
        "target (≥ 20 atoms)",
    ]
    lines = [
        "# Molecular Hessian: direct head against autodiff and GFN2-xTB finite differences",
        "",
        *environment_lines(1, quick),
        "- command: `python benchmarks/molecules_hessian_speed.py"
        + (" --quick`" if quick else "`"),
        "- a fresh process per method and molecule: one untimed Hessian measures the peak "
        "resident memory above that before it, then the median wall time of the timed "
        "Hessians (3 for predicted, 1 for the others)",
        "",
        markdown_table(header, rows),
        "",
    ]
    if passes:
        lines.append(
            f"Target (≥ 10× faster than autodiff and than xTB FD, less peak memory than autodiff, "
            f"at ≥ 20 atoms): {verdict(all(passes))} on {sum(passes)} of {len(passes)} molecules."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small molecules only")
    parser.add_argument("--repeats", type=int, default=3, help="timed Hessians per measurement")
    parser.add_argument("--output", type=Path, default=None, help="report path")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "MOLECULE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.repeats)))
        return

    names = (
        ["C1", "C3"]
        if args.quick
        else [f"C{n}" for n in ALKANE_CARBONS] + [f"s22:{name}" for name in S22_NAMES]
    )
    results = []
    for name in names:
        for method in METHODS:
            repeats = args.repeats if method == "predicted" else 1
            progress(f"{method} on {name}")
            results.append(run_child(method, name, repeats))
    text = report(results, args.quick)
    print(text)
    output = args.output
    if output is None and not args.quick:
        output = Path(__file__).resolve().parent / "results" / RESULTS_NAME
    write_report(text, output)


if __name__ == "__main__":
    main()
