"""Actions: what a trigger does with an event (http, command, email, python) and what one attempt came to."""

from redrive.actions.base import Action, Outcome, Resources

__all__ = ["Action", "Outcome", "Resources"]
