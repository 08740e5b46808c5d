"""What the form does with typed values: a sampler's recommended steps apply only while Steps is untouched,
and the class pickers say which typed names are no class (and which class they may mean) instead of guessing.

The steps rule is decided in the page, where a server answer could arrive after the typing."""

from __future__ import annotations

import json
from collections.abc import Callable

import gradio as gr

import samplers
from dit_demo.lab.specs.defaults import Defaults
from dit_demo.runtime.labels import Labels

# the notes say which rule holds now, so a change of sampler never changes Steps unannounced
FOLLOWS = "Steps follow the sampler: {steps} recommended for {label} until you set them."
KEPT = "Steps stay at your {steps} when you switch samplers ({label} recommends {default})."


def recommended_steps(defaults: Defaults) -> dict[str, dict]:
    """Every offered sampler's recommended step count (capped at the model's) and label, for the page."""
    return {
        s.name: {"steps": defaults.steps_for(s.name), "label": s.label} for s in samplers.for_family(defaults.family)
    }


def steps_note(defaults: Defaults, sampler: str, steps: int | None = None) -> str:
    """The note under Steps: ``steps`` None while untouched (the sampler's count applies), else the person's."""
    known = recommended_steps(defaults).get(sampler)
    if known is None:
        return ""
    if steps is None:
        return FOLLOWS.format(**known)
    return KEPT.format(steps=steps, label=known["label"], default=known["steps"])


def _note_js(table: str) -> str:
    """A JS expression ``note(name, steps, mine)`` built from the same two sentences as ``steps_note``."""
    follows = json.dumps(FOLLOWS)
    kept = json.dumps(KEPT)
    return (
        f"((name, steps, mine) => {{ const k = {table}[name]; if (!k) return '';"
        f" const fill = (s) => s.replace('{{label}}', k.label).replace('{{default}}', k.steps);"
        f" return mine ? fill({kept}).replace('{{steps}}', steps) : fill({follows}).replace('{{steps}}', k.steps); }})"
    )


def wire_steps(defaults: Defaults, sampler: gr.Dropdown, steps: gr.Slider, mine: gr.State, note: gr.Markdown) -> None:
    """A sampler picked brings its recommended steps only while ``mine`` is False; touching Steps (typing,
    dragging) sets it. Both run in the page: a server round trip would land after the person's typing."""
    table = json.dumps(recommended_steps(defaults))
    note_of = _note_js(table)
    on_sampler = (
        f"(name, steps, mine) => {{ const k = {table}[name];"
        f" if (mine || !k) return [steps, mine, {note_of}(name, steps, mine)];"
        f" return [k.steps, false, {note_of}(name, k.steps, false)]; }}"
    )
    sampler.input(None, [sampler, steps, mine], [steps, mine, note], js=on_sampler, api_visibility="private")
    on_steps = f"(steps, name) => [true, {note_of}(name, steps, true)]"
    steps.input(None, [steps, sampler], [mine, note], js=on_steps, api_visibility="private")


def wire_class_note(labels: Callable[[], Labels], picker: gr.Dropdown, note: gr.Markdown) -> None:
    """``note`` says what the text typed in a class ``picker`` will do, as it is typed (Enter takes only an
    exact name: page.js); a pick clears it, since the pick answers the text."""

    def typed(picked: list | str | None, key: gr.KeyUpData) -> str:
        chosen = picked if isinstance(picked, list) else [picked]
        return class_note(labels(), key.input_value, chosen, entered=key.key == "Enter")

    # every keystroke is answered (Gradio's "always_last" replays a pending keystroke's stale text instead
    # of the last one's); each answer takes a millisecond, so they come back in order
    picker.key_up(typed, picker, note, queue=False, trigger_mode="multiple", api_visibility="private")
    picker.change(None, None, note, js="() => ''", api_visibility="private")


def class_note(labels: Labels, typed: str, picked: list | None, entered: bool = False) -> str:
    """What the class picker's typed text will do, said while it is typed: nothing while the list shows
    classes it is part of (unless Enter was pressed: Enter takes only a whole name), "already picked" for a
    class that is, and for text that is part of no class the closest names."""
    text = (typed or "").strip()
    if not text:
        return ""
    try:
        class_id = labels.resolve(text)
    except ValueError:
        class_id = None
    choices = labels.choices()
    if class_id is not None:
        choice = choices[list(labels.names).index(class_id)]
        return f"{choice} is already picked." if choice in (picked or []) else ""
    if any(text.lower() in choice.lower() for choice in choices):
        return (
            f"{text!r} is part of a name: Enter takes only a whole name, synonym or id; click a class in the list."
            if entered
            else ""
        )
    return _no_class(labels, text)


def _no_class(labels: Labels, text: str) -> str:
    close = labels.suggest(text)
    if close:
        ids = [labels.resolve(c) for c in close]
        return f"No class is named {text!r}; did you mean {' or '.join(f'{i}: {labels.name(i)}' for i in ids)}?"
    if len(labels) <= 20:  # a short list is the best hint there is
        return f"No class is named {text!r}. The classes: {', '.join(labels.choices())}."
    return f"No class is named {text!r}: type part of a name to see the classes that contain it."
