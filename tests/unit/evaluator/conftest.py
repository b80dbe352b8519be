"""Fixtures for the evaluator's tests: a dataset on disk and the LLM simulator on a free local port."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
from evaluator_harness import world, write_jsonl

from assaylab import simulator


@pytest.fixture
def dataset_path(tmp_path: pathlib.Path) -> pathlib.Path:
    """60 synthetic records the simulator knows how to answer."""
    return write_jsonl(tmp_path / "dataset.jsonl", simulator.make_dataset(60, seed=3))


@pytest.fixture
async def sim() -> AsyncIterator[simulator.SimulatorServer]:
    async with simulator.SimulatorServer(world()) as server:
        yield server
