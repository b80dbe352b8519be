"""The optimizer's checkpoint: a JSON file of every finished evaluation and proposal, written after each one.

A resumed run replays the optimizer from its seed; every evaluation and proposal already in the checkpoint is
answered from it instead of calling a model or the judge again, so the replay reaches the point where the
process stopped without repeating paid work, and continues from there. The file holds prompts (the optimizer's
own output) and per-record outcomes (scores, verdict counts, dollars); never a conversation or an answer.
Writes are atomic (a temporary file renamed over the old one): a killed process leaves the last complete state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any

VERSION = 1


class CheckpointMismatch(RuntimeError):
    """The checkpoint was written by a run with other settings, or the replay went another way."""


def prompt_sha(prompt: str) -> str:
    """The sha256 of a prompt, hex: how the checkpoint, status and the gateway's arm name it."""
    return hashlib.sha256(prompt.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One prompt's result on one record: the pair's score (0 when the answer broke the format), the format
    checks of both answers, the judge calls made and the dollars the calls cost (None: not priced)."""

    record_id: str
    score: float
    format_ok: bool | None
    baseline_format_ok: bool | None
    judge_calls: int
    usd: float | None

    def wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Checkpoint:
    """Evaluations keyed by (prompt sha, record id) and proposals in the order they were made."""

    def __init__(self, path: pathlib.Path | None, *, settings: dict[str, Any]) -> None:
        self.path = path
        self.settings = settings
        self.prompts: dict[str, str] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.proposals: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: pathlib.Path) -> None:
        data = json.loads(path.read_text())
        if data.get("version") != VERSION or data.get("settings") != self.settings:
            raise CheckpointMismatch(
                f"checkpoint {path} was written by a run with other settings: delete it to start over"
            )
        self.prompts = dict(data["prompts"])
        self.outcomes = {key: Outcome(**value) for key, value in data["outcomes"].items()}
        self.proposals = list(data["proposals"])

    @staticmethod
    def key(sha: str, record_id: str) -> str:
        return f"{sha}/{record_id}"

    def outcome(self, sha: str, record_id: str) -> Outcome | None:
        return self.outcomes.get(self.key(sha, record_id))

    def add_outcome(self, prompt: str, outcome: Outcome) -> None:
        sha = prompt_sha(prompt)
        self.prompts[sha] = prompt
        self.outcomes[self.key(sha, outcome.record_id)] = outcome
        self.save()

    def add_proposal(self, parent: str, prompt: str, *, usd: float) -> None:
        self.proposals.append({"parent": prompt_sha(parent), "prompt": prompt, "usd": usd})
        self.prompts[prompt_sha(prompt)] = prompt
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "version": VERSION,
            "settings": self.settings,
            "prompts": self.prompts,
            "outcomes": {key: o.wire() for key, o in self.outcomes.items()},
            "proposals": self.proposals,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data, sort_keys=True))
        os.replace(temporary, self.path)
