"""Class names and synonyms -> ids, with "did you mean" suggestions for typos."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence


class Labels:
    """Lookup over ``id2label`` where each label is a comma-separated list of synonyms."""

    def __init__(self, names: Mapping[int, list[str]]):
        self.names = dict(sorted(names.items()))
        self._by_name: dict[str, int] = {}
        for class_id, synonyms in self.names.items():
            for synonym in synonyms:
                self._by_name.setdefault(synonym.lower(), class_id)  # first class wins a shared synonym

    @classmethod
    def from_id2label(cls, id2label: Mapping[str | int, str]) -> Labels:
        return cls({int(k): [s.strip() for s in str(v).split(",") if s.strip()] for k, v in id2label.items()})

    def __len__(self) -> int:
        return len(self.names)

    def name(self, class_id: int) -> str:
        """The first (display) name of a class."""
        return self.names[class_id][0]

    def choices(self) -> list[str]:
        """Display strings "id: name, synonym, ..." for pickers (searchable by any synonym)."""
        return [f"{i}: {', '.join(s)}" for i, s in self.names.items()]

    def suggest(self, text: str, n: int = 3) -> list[str]:
        key = text.strip().lower()
        close = difflib.get_close_matches(key, self._by_name, n=n, cutoff=0.6)
        if not close:
            close = [name for name in self._by_name if key and key in name][:n]
        return [self.names[self._by_name[c]][0] if c == self.names[self._by_name[c]][0].lower() else c for c in close]

    def resolve(self, item: str | int) -> int:
        """A class id from an id, a synonym (any case) or a picker string "id: name, ..."."""
        if item is None:
            raise ValueError(f"Class is missing; give a class name, a synonym or an id 0..{len(self.names) - 1}.")
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"Class must be a name or an id, got {str(item)[:40]!r}.")
        if isinstance(item, int):
            if item in self.names:
                return item
            raise ValueError(f"Class id {item} is out of range; allowed ids are 0..{len(self.names) - 1}.")
        text = item.strip()
        if len(text) > 200:
            raise ValueError(
                f"Class {text[:40]!r}... is {len(text)} characters long; no class name is longer than 200."
            )
        if not text:
            raise ValueError("Class is empty; give a class name or an id.")
        head, colon, rest = text.partition(":")
        if re.fullmatch(r"-?[0-9]+", head.strip()):  # ASCII digits: "²".isdigit() is True, int("²") fails
            class_id = self.resolve(int(head))
            # "id: name" (a picker's string) must name that id here: a picker filled for another
            # model (the app switched models meanwhile) must not silently pick a different class
            first = rest.split(",")[0].strip().lower()
            if colon and first and first not in (s.lower() for s in self.names[class_id]):
                raise ValueError(
                    f"Class {text!r} does not match this model's class {class_id} ({self.name(class_id)!r}); "
                    "the model may have changed: pick the class again."
                )
            return class_id
        key = text.lower()
        if key in self._by_name:
            return self._by_name[key]
        hint = self.suggest(text)
        did_you_mean = f" Did you mean: {', '.join(repr(h) for h in hint)}?" if hint else ""
        raise ValueError(
            f"Unknown class {text!r}.{did_you_mean} Use a class name, a synonym or an id 0..{len(self.names) - 1}."
        )

    def resolve_all(self, items: Sequence[str | int]) -> list[int]:
        """Every item's class id; one ValueError naming every item that is not a class, not just the first."""
        ids, problems = [], []
        for item in items:
            try:
                ids.append(self.resolve(item))
            except ValueError as exc:
                problems.append(str(exc))
        if len(problems) > 1:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise ValueError(f"{len(problems)} of the classes are not this model's: " + " ".join(problems[:5]) + more)
        if problems:
            raise ValueError(problems[0])
        return ids
