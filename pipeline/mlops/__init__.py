"""What every run records and publishes: MLflow runs (tags, params, datasets,
evaluations), the model registry and its `champion` alias, model cards, and plots."""
