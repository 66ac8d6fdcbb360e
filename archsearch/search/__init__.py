"""The search: a YAML space of specs sampled define-by-run by Optuna, costed before training, trained, measured."""
