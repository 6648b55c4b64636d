"""Training: the optimizer step, the loop, evaluation, logging. Free of Ray; collectives enter
only through the `Reducer` passed in (identity on one process)."""
