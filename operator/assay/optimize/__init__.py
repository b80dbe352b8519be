"""Prompt optimization for a candidate model (issue 11): the no-peeking split of a dataset, and an optimizer
that proposes prompts from the examples the candidate loses, scored by assay's own blind judge against the
baseline's answers.

Only `driver` imports the optimizer library (`gepa`, the `optimize` extra); the operator image never installs
it and nothing outside the optimization Job imports `driver`.
"""
