"""Quality over many samples: the metrics with their intervals, the evaluator, and the sweeps' answers."""
