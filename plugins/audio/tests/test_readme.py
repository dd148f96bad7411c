"""The Python example in the plugin's README.md runs and its assertions hold."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
REPOSITORY = Path(__file__).resolve().parents[3]


def test_readme_has_one_example():
    assert len(EXAMPLES) == 1


def test_readme_example_runs(monkeypatch):
    # The example reads the shipped audio by a path relative to the repository root.
    monkeypatch.chdir(REPOSITORY)
    assert os.path.isfile("datasets/audio/bass.wav")
    exec(compile(EXAMPLES[0], str(README), "exec"), {"__name__": "readme_example"})
