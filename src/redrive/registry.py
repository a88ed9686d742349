"""The registry: what the loaded plugins registered, read once from the plugin manager and then only looked up.

Action kinds, signature schemes and alert channel kinds by name, the merged hint catalog, classification, and the
trigger-file model whose ``action``, ``verify`` and ``channels`` unions hold exactly the registered ones. The rest
of redrive reads this object (it is built by ``redrive.plugins.load_plugins`` and held by the app and the CLI);
nothing here is global, and nothing on the hot path calls the plugin manager except classification, which runs
only on a failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import pluggy

from redrive.errors import PluginError
from redrive.extensions import ActionKind, AlertChannelKind, SignatureScheme
from redrive.failures.classify import BuiltinClassifier, Failure, classify_raised
from redrive.failures.hints import Hint, hint_for

if TYPE_CHECKING:
    from redrive.actions.base import Action
    from redrive.triggers.config import RedriveConfig

T = TypeVar("T", ActionKind, SignatureScheme, AlertChannelKind)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CLASSIFIER = "redrive.classify"
"""The name the built-in classifier (the kind's rules, then the generic ones) is registered under; it runs last."""


def _tag(model: type[Any], field: str) -> str | None:
    info = model.model_fields.get(field)
    values = get_args(info.annotation) if info is not None else ()
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def _collect(results: list[list[T]], what: str, tag: str) -> dict[str, T]:
    found: dict[str, T] = {}
    for item in (item for batch in reversed(results) for item in batch or ()):  # registration order
        if not _NAME.match(item.name):
            raise PluginError(f"{what} {item.name!r}: a name is 1 to 32 of a-z, 0-9, '_' and '-'")
        if item.name in found:
            raise PluginError(f"{what} {item.name!r} is registered twice")
        if _tag(item.config, tag) != item.name:
            raise PluginError(f"{what} {item.name!r}: its config model needs the field {tag}: Literal[{item.name!r}]")
        found[item.name] = item
    return found


class Registry:
    """Action kinds, signature schemes, alert channels, hints and classification as the plugins registered them."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        hook = manager.hook
        self.kinds: Mapping[str, ActionKind] = _collect(hook.redrive_action_kinds(), "action kind", "kind")
        self.schemes: Mapping[str, SignatureScheme] = _collect(
            hook.redrive_signature_schemes(), "signature scheme", "scheme"
        )
        self.channels: Mapping[str, AlertChannelKind] = _collect(hook.redrive_alert_channels(), "alert channel", "kind")
        hints: dict[str, Hint] = {}
        for catalog in reversed(hook.redrive_hints()):  # later registrations refine earlier ones
            hints.update(catalog or {})
        self.hints: Mapping[str, Hint] = hints
        if manager.get_plugin(CLASSIFIER) is None:
            manager.register(BuiltinClassifier({k.name: k.classify for k in self.kinds.values()}), name=CLASSIFIER)
        self._classify = hook.redrive_classify
        self.overrides = len(hook.redrive_classify.get_hookimpls()) > 1
        """Whether a plugin overrides classification (the built-in classifier is always there)."""
        self._config_model: type[RedriveConfig] | None = None

    def build(self, config: Any) -> Action:
        """Build the action for an ``action`` block validated by ``config_model``; an unknown kind is a ValueError."""
        kind = self.kinds.get(getattr(config, "kind", None) or "")
        if kind is None:
            raise ValueError(f"unknown action kind {getattr(config, 'kind', None)!r}")
        return kind.build(config)

    def classify(self, kind: str, exc: BaseException) -> Failure:
        """Classify an exception an action of ``kind`` raised: plugins first, the built-in rules last."""
        try:
            failure: Failure | None = self._classify(kind=kind, exc=exc)
        except Exception:  # a broken classifier plugin must not lose the attempt's result
            failure = None
        return failure if failure is not None else classify_raised(exc)

    def hint_for(self, code: str, message: str = "") -> Hint:
        """The hint for ``code`` from every registered catalog."""
        return hint_for(code, message, self.hints)

    def summary(self, kind: str, rendered: Mapping[str, Any]) -> str:
        """Where a rendering of a ``kind`` action goes, in one line; the kind's name when it is not registered."""
        found = self.kinds.get(kind)
        return found.summary(rendered) if found is not None else kind

    @property
    def config_model(self) -> type[RedriveConfig]:
        """The trigger-file model whose ``action`` and ``verify`` unions are this registry's kinds and schemes."""
        if self._config_model is None:
            from redrive.triggers.config import config_model

            self._config_model = config_model(
                [k.config for k in self.kinds.values()],
                [s.config for s in self.schemes.values()],
                [c.config for c in self.channels.values()],
            )
        return self._config_model

    @property
    def key_headers(self) -> dict[str, str]:
        """The idempotency-key source each scheme implies, by scheme name."""
        return {name: s.key_header for name, s in self.schemes.items() if s.key_header is not None}
