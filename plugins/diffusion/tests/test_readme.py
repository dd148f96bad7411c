"""The Python example in the plugin's README.md runs and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_one_example():
    assert len(EXAMPLES) == 1


def test_readme_example_runs():
    exec(compile(EXAMPLES[0], str(README), "exec"), {"__name__": "readme_example"})
