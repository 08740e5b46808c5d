"""A comparison asked for by a tab or a tool: the models it runs on (the loaded one, or a model axis whose
extra models load once and stay in the slot's cache) and its spec, checked once."""

from __future__ import annotations

from dit_demo.app.context import AppContext
from dit_demo.app.model_slot import families_of
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.lab.specs.model_axis import parse_models


def comparison_request(ctx: AppContext, models, samplers_text, steps_text, class_item, **settings) -> tuple:
    """(what it runs on: the loaded model's copies or each named model's, the checked spec, the models the
    cache dropped to stay within its budget). ``settings``: ComparisonSpec.build's other keywords. Every
    model name is checked before any model loads; a bad value is a one-sentence ``ValueError``."""
    names = parse_models(models)
    copies, dropped = ctx.slot.models_for(names)
    loaded = ctx.slot.get()
    spec = ComparisonSpec.build(
        samplers_text,
        steps_text,
        # the class picker lists the loaded model's classes: on a model axis every model takes it by its id
        loaded.labels.resolve(class_item) if names else class_item,
        max_steps=loaded.num_train_timesteps,
        family=loaded.parameterization.family,
        models=names,
        families=families_of(copies),
        **settings,
    )
    return copies, spec, dropped
