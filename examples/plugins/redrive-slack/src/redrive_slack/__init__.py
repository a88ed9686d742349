"""redrive-slack: a redrive plugin that posts Block Kit messages to Slack incoming webhooks (the ``slack`` action
kind), explains Slack's refusals, and announces dead-lettered executions in a channel."""

__version__ = "0.1.0"
