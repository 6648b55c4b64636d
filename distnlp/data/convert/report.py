"""What a conversion counted besides docs: skipped input, NER join results, reader facts.

Readers take an optional `ConvertReport` and add to it; the writer copies it into meta.json, so
nothing that was dropped is dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ConvertReport:
    # e.g. skipped_sentences, ner_missing_sentences, ner_realigned_sentences
    counts: Counter[str] = field(default_factory=Counter)
    # facts for meta.json, e.g. {"cats_exclusive": True, "ner_drop_labels": ["O", "OTH"]}
    info: dict[str, Any] = field(default_factory=dict)
    # the first few problems that were skipped, with file:line, so a user can look at them
    examples: list[str] = field(default_factory=list)
    max_examples: int = 20

    def skip(self, counter: str, message: str) -> None:
        self.counts[counter] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(message)
