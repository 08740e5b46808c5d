"""The models ``compare`` runs on: ``--model`` alone, or a model axis, ``--models a,b`` (folders or hub ids)."""

from __future__ import annotations

from dit_demo.cli.lever_flags import levers_from_args
from dit_demo.lab.specs.model_axis import parse_models
from dit_demo.runtime.devices import parse_device
from dit_demo.runtime.model_copies import load_with_levers


def load_compared(args) -> tuple:
    """(the model, or each of ``--models`` by name; the first model; the request's levers; the spec's
    model-axis keywords: its models and their families, none without ``--models``)."""
    device = parse_device(args.device)
    levers = levers_from_args(args, device)
    names = parse_models(args.models)
    if not names:
        bundle = load_with_levers(args.model, device, levers)
        return bundle, bundle, levers, {}
    models = {name: load_with_levers(name, device, levers) for name in names}
    families = {name: bundle.parameterization.family for name, bundle in models.items()}
    return models, models[names[0]], levers, {"models": names, "families": families}
