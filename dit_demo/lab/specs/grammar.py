"""The comparison grammar: how people write step counts (``10,25,50``, ``10-50 (+10)``, ``5-50 [4]``),
cfg lists, sampler lists (``dpmpp_2m[karras=true]`` variants among them) and a reference
(``ddim@250``). Each parser returns checked values or raises a ``ValueError`` a person can act on."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

import samplers
from dit_demo.runtime.parsing import DIGITS, MAX_CFG, as_float, as_int, shown

MAX_AXIS = 16  # values per comparison axis (samplers, step counts, cfg scales)


MAX_TEXT = 200  # characters in a list field (step counts, cfg scales, reference)


_RANGE = re.compile(r"([0-9]+)\s*-\s*([0-9]+)\s*(?:\(\s*\+\s*([0-9]+)\s*\)|\[\s*([0-9]+)\s*\])")


STEPS_HELP = (
    "numbers separated by commas (10,25,50), a range with a step (10-50 (+10)) or a range with a count (5-50 [4])"
)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside (...) or [...]; ``depth`` counts open brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def _list_items(text: str, what: str, example: str) -> list[str]:
    """Comma-separated items of a text field; an empty item is a typo, never silently dropped."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"{what} text is {len(text)} characters long; at most {MAX_TEXT} are read (e.g. {example}).")
    parts = _split_top_level(text)
    if not any(parts):
        raise ValueError(f"No {what.lower()} given; write e.g. {example}.")
    if not all(parts):
        raise ValueError(f"{what} {shown(text)} have an empty item between commas; write e.g. {example}.")
    return parts


def _step_number(token: str, part: str, max_steps: int) -> int:
    if len(token) > len(str(max_steps)) or not 1 <= int(token) <= max_steps:
        raise ValueError(
            f"Step count {shown(token, 20)}{'' if token == part.strip() else f' in {shown(part)}'} is out of range; "
            f"this model takes 1 to {max_steps} steps."
        )
    return int(token)


def _parse_step_part(part: str, max_steps: int) -> list[int]:
    if DIGITS.fullmatch(part):
        return [_step_number(part, part, max_steps)]
    match = _RANGE.fullmatch(part)
    if not match:
        raise ValueError(f"Cannot read step counts {shown(part)}. Use {STEPS_HELP}.")
    lo, hi = (_step_number(v, part, max_steps) for v in match.groups()[:2])
    step, count = match.groups()[2:]
    if hi < lo:
        raise ValueError(f"Range {shown(part)} runs backwards; write the smaller number first.")
    if step is not None:
        if len(step) > 6 or not 1 <= int(step) <= max_steps:
            raise ValueError(f"The step of range {shown(part)} must be between 1 and {max_steps}.")
        values = range(lo, hi + 1, int(step))  # sized by the bounds above: at most max_steps items
        if len(values) > MAX_AXIS:
            raise ValueError(f"Range {shown(part)} gives {len(values)} step counts; at most {MAX_AXIS} per comparison.")
        return list(values)
    distinct = hi - lo + 1
    low_count = 1 if lo == hi else 2  # "1-100000 [1]" would silently mean just 1
    if len(count) > 3 or not low_count <= int(count) <= min(MAX_AXIS, distinct):
        raise ValueError(
            f"The count of range {shown(part)} must be between {low_count} and {min(MAX_AXIS, distinct)} "
            f"({distinct} distinct step counts lie in it; at most {MAX_AXIS} per comparison)."
        )
    return [int(round(v)) for v in np.linspace(lo, hi, int(count))]


def parse_steps(text: str | int | Sequence[int] | None, max_steps: int = 1000) -> list[int]:
    """``"10,25,50"``, ``"10-50 (+10)"`` (every 10), ``"5-50 [4]"`` (4 evenly spaced) or a mix.

    Duplicates are dropped and the order kept; every value lies in 1..``max_steps``.
    """
    if text is None:
        raise ValueError(f"Step counts are missing; give {STEPS_HELP}.")
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        text = [text]
    if isinstance(text, str):
        values = [v for part in _list_items(text, "Step counts", "10,25,50") for v in _parse_step_part(part, max_steps)]
    elif isinstance(text, Sequence):
        if len(text) > MAX_AXIS:
            raise ValueError(f"Too many step counts ({len(text)}); at most {MAX_AXIS} per comparison.")
        values = [as_int("Step count", v, 1, max_steps) for v in text]
    else:
        raise ValueError(f"Step counts must be text such as '10,25,50', got {shown(text)}.")
    unique = list(dict.fromkeys(values))
    if not unique:
        raise ValueError(f"No step counts given; give {STEPS_HELP}.")
    if len(unique) > MAX_AXIS:
        raise ValueError(f"Too many step counts ({len(unique)}); at most {MAX_AXIS} per comparison.")
    return unique


def parse_floats(
    text: str | float | Sequence[float] | None, what: str = "CFG scales", high: float = MAX_CFG
) -> list[float]:
    """A comma list of numbers in [0, high] (``"1.5,4"``), or a number, or a list of them."""
    if text is None:
        raise ValueError(f"{what} are missing; give one number or a comma list such as 1.5,4.")
    if isinstance(text, (int, float, np.integer, np.floating)) and not isinstance(text, bool):
        text = [text]
    if isinstance(text, str):
        items: Sequence = _list_items(text, what, "1.5,4")
    elif isinstance(text, Sequence):
        items = text
    else:
        raise ValueError(f"{what} must be text such as '1.5,4', got {shown(text)}.")
    if len(items) > MAX_AXIS:
        raise ValueError(f"Too many {what} ({len(items)}); at most {MAX_AXIS}.")
    if not items:
        raise ValueError(f"No {what} given; give one number or a comma list such as 1.5,4.")
    singular = what[:-1] if what.endswith("s") else what
    return list(dict.fromkeys(as_float(singular, v, 0.0, high) for v in items))


def split_list(text: str) -> list[str]:
    """Items of a comma list; commas inside [...] belong to a sampler variant's options."""
    items, depth, current = [], 0, []
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth <= 0:
            items.append("".join(current))
            current, depth = [], 0
        else:
            current.append(char)
    return [*items, "".join(current)]


def parse_names(text: str | Sequence[str] | None, family: str | None = None) -> list[str]:
    """Sampler names or variants (``dpmpp_2m[karras=true]``) from a comma list or a list, spelled
    canonically; every unknown or malformed one, or one that cannot drive a model of ``family`` (when
    given), is reported together."""
    offered = samplers.names() if family is None else [s.name for s in samplers.for_family(family)]
    if text is None or isinstance(text, str) and not text.strip():
        raise ValueError(f"No samplers given; choose from {', '.join(offered)}.")
    if isinstance(text, str):
        if len(text) > MAX_AXIS * 80:
            raise ValueError(f"The sampler list is {len(text)} characters long; give at most {MAX_AXIS} samplers.")
        items = split_list(text)
    elif isinstance(text, Sequence):
        items = list(text)
    else:
        raise ValueError(f"Samplers must be a list of names, got {shown(text)}.")
    if len(items) > MAX_AXIS:  # counted before anything is looked up or built
        raise ValueError(f"Too many samplers ({len(items)}); at most {MAX_AXIS} per comparison.")
    if not all(isinstance(n, str) for n in items):
        raise ValueError(f"Sampler names must be text, got {shown(items)}.")
    wanted = list(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not wanted:
        raise ValueError(f"No samplers given; choose from {', '.join(offered)}.")
    return _canonical_samplers(wanted, family)


def _canonical_samplers(wanted: list[str], family: str | None) -> list[str]:
    names, errors = [], []
    for name in wanted:
        try:
            sampler = samplers.get(name)
            names.append((sampler if family is None else samplers.check_family(sampler, family)).name)
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ValueError(" ".join(errors[:3]) + more)
    return list(dict.fromkeys(names))


def parse_reference(
    text: str | Sequence | None, max_steps: int = 1000, family: str | None = None
) -> tuple[str, int] | None:
    """``"ddim@250"`` -> ("ddim", 250); empty -> None (the comparison picks its own reference)."""
    if text is None or isinstance(text, str) and not text.strip():
        return None
    example = "ddim@250 (sampler@steps)"
    if isinstance(text, str):
        if len(text) > MAX_TEXT or "@" not in text:
            raise ValueError(f"Reference {shown(text)} must look like {example}.")
        name, _, steps = (p.strip() for p in text.partition("@"))
    elif isinstance(text, Sequence) and len(text) == 2:
        name, steps = text
    else:
        raise ValueError(f"Reference {shown(text)} must look like {example}.")
    (name,) = parse_names([str(name)], family)
    return name, as_int(f"The reference's step count ({shown(steps, 20)} in {shown(text)})", steps, 1, max_steps)
