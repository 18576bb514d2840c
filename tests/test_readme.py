"""The README's Python snippets run as written (with fewer training steps and trials)."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SMALLER = {"steps=300": "steps=3", "trials=200": "trials=12", "top_k=2": "top_k=1", "n_trials=50": "n_trials=3",
           "range(20)": "range(6)"}


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_python_snippets_run_in_order(tmp_path, monkeypatch):
    code = [block for block in snippets() if "def tiny_cnn" not in block]  # the space example is a fragment
    assert len(code) == 2 and "graphs = " in code[0] and "study.optimize" in code[1]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in code:
        for big, small in SMALLER.items():
            block = block.replace(big, small)
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 (our own README)
    assert namespace["result"].final and namespace["model"](namespace["data"].x_val[:2]).shape == (2, 10)
    assert len(namespace["study"].trials) == 3


@pytest.mark.parametrize("name", ["Scorer", "run_search", "create_model", "SearchConfig"])
def test_the_api_names_are_exported(name):
    import hypernas

    assert name in hypernas.__all__ and getattr(hypernas, name)
