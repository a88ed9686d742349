"""Actions: what a trigger does with an event (http, command, email) and what one attempt came to."""

from redrive.actions.base import Action, Outcome, Resources, build_action

__all__ = ["Action", "Outcome", "Resources", "build_action"]
