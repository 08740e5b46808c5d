"""What the Generate form says about typed values: the notes under Steps and the class pickers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dit_demo.app.form_rules import class_note, recommended_steps, steps_note
from dit_demo.lab.specs.defaults import Defaults
from dit_demo.runtime.labels import Labels

EMBEDDED = Path(__file__).resolve().parents[1] / "dit_demo" / "weights" / "fashion-mnist" / "model_index.json"
FASHION = Labels.from_id2label(json.loads(EMBEDDED.read_text())["id2label"])


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("Snekaer", "7: Sneaker"), ("tshirt", "0: T-shirt/top"), ("pullovr", "2: Pullover"), ("trousers", "1: Trouser")],
)
def test_a_misspelt_class_gets_the_class_it_may_mean(typed, meant):
    note = class_note(FASHION, typed, ["0: T-shirt/top"])
    assert note.startswith(f"No class is named {typed!r}") and meant in note


def test_a_word_in_no_class_name_lists_a_short_models_classes():
    note = class_note(FASHION, "shoe", [])
    assert note.startswith("No class is named 'shoe'") and all(choice in note for choice in FASHION.choices())


def test_a_picked_class_and_a_partial_name_say_what_enter_does():
    assert class_note(FASHION, "9", ["9: Ankle boot"]) == "9: Ankle boot is already picked."
    assert class_note(FASHION, "sneaker", ["0: T-shirt/top"]) == ""  # Enter takes it: nothing to say
    assert class_note(FASHION, "sneak", []) == ""  # the list shows what it is part of, while typing
    assert "Enter takes only a whole name" in class_note(FASHION, "sneak", [], entered=True)


def test_the_steps_note_says_which_rule_holds(small_bundle):
    defaults = Defaults.for_bundle(small_bundle)
    heun = recommended_steps(defaults)["heun"]
    assert (
        steps_note(defaults, "heun")
        == f"Steps follow the sampler: {heun['steps']} recommended for Heun until you set them."
    )
    assert (
        steps_note(defaults, "heun", 12)
        == f"Steps stay at your 12 when you switch samplers (Heun recommends {heun['steps']})."
    )
    assert heun["steps"] == defaults.steps_for("heun") and steps_note(defaults, "no_such_sampler") == ""
