"""The trigger file and its triggers: models, loading with every problem listed, templating, the runtime set."""
