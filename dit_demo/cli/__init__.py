"""The command lines: ``python -m dit_demo`` and its subcommands, the sweep's and the evaluator's, their flags."""
