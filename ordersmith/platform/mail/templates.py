"""The emails the product sends: each one's subject, the context keys it needs, and its files.

A template is `templates/<name>.txt` (the plain-text part) and `templates/<name>.html`
(the HTML part, placed inside `templates/layout.html`), written with `string.Template`
placeholders (`${link}`). The keys are declared here so that a caller who forgets one
fails when it queues the email, not when a customer reads a half-empty message. Keys
marked secret (a link ending in a single-use token) are sealed while the email waits in
the outbox (`sealing.py`).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATE_DIRECTORY = Path(__file__).parent / "templates"


class EmailTemplateError(ValueError):
    """An email was asked for with an unknown template or a context that does not fit it."""


@dataclass(frozen=True)
class EmailTemplate:
    """One kind of email: its subject line, the context keys its parts use, and the secret ones."""

    name: str
    subject: str
    keys: frozenset[str]
    # Values that would let whoever reads them act as the recipient: never stored in clear.
    secret_keys: frozenset[str] = frozenset()

    @property
    def text_path(self) -> Path:
        return TEMPLATE_DIRECTORY / f"{self.name}.txt"

    @property
    def html_path(self) -> Path:
        return TEMPLATE_DIRECTORY / f"{self.name}.html"


def _template(name: str, subject: str, *keys: str, secret: tuple[str, ...] = ()) -> EmailTemplate:
    return EmailTemplate(name, subject, frozenset(keys), frozenset(secret))


TEMPLATES: dict[str, EmailTemplate] = {
    template.name: template
    for template in (
        # Sent at sign-up and on request; the link ends in a single-use token.
        _template(
            "verify_email",
            "Confirm your email address for ${store_name}",
            "store_name",
            "link",
            secret=("link",),
        ),
        # Sent when someone asks for a password reset of an existing account.
        _template(
            "reset_password",
            "Reset your Ordersmith password",
            "link",
            "expires_in_minutes",
            secret=("link",),
        ),
        # Sent by the invitation service when an admin invites someone to a store.
        _template(
            "invitation",
            "${inviter_email} invited you to ${store_name} on Ordersmith",
            "store_name",
            "inviter_email",
            "role",
            "link",
            "expires_in_days",
            secret=("link",),
        ),
        # Sent after a security-relevant act: password changed, refresh token reused, ...
        _template(
            "security_alert", "Security alert for your ${store_name} account", "store_name", "what", "when"
        ),
        # Sent by the trial sweep 3 days and 1 day before a trial ends.
        _template(
            "trial_reminder",
            "Your ${store_name} trial ends in ${days_left} day(s)",
            "store_name",
            "days_left",
            "ends_on",
        ),
        # Sent by the trial sweep when a trial ended without a plan: the store is read-only.
        _template("trial_ended", "Your ${store_name} trial has ended", "store_name", "ended_on"),
        # Sent to owners and admins when a soft plan limit is gone over.
        _template(
            "limit_exceeded",
            "${store_name} is over its ${plan_name} plan's ${limit} limit",
            "store_name",
            "limit",
            "used",
            "allowed",
            "plan_name",
        ),
    )
}


def get_template(name: str) -> EmailTemplate:
    """The template called `name`; `EmailTemplateError` naming the known ones if there is none."""
    template = TEMPLATES.get(name)
    if template is None:
        known = ", ".join(sorted(TEMPLATES))
        raise EmailTemplateError(f"no email template {name!r}; the templates are: {known}")
    return template


def check_context(name: str, context: Mapping[str, Any]) -> EmailTemplate:
    """The template, once `context` has exactly its keys, each a string or a number."""
    template = get_template(name)
    missing = sorted(template.keys - context.keys())
    unexpected = sorted(context.keys() - template.keys)
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected)}")
        raise EmailTemplateError(f"email template {name!r} got a context with {'; '.join(problems)}")
    for key, value in context.items():
        # The context travels as JSON through the outbox and is shown verbatim.
        if isinstance(value, bool) or not isinstance(value, str | int):
            kind = type(value).__name__
            raise EmailTemplateError(
                f"email template {name!r}: {key!r} must be a string or a whole number, got {kind}"
            )
    return template


@functools.cache
def template_source(path: Path) -> string.Template:
    """A template file, read once per process."""
    return string.Template(path.read_text(encoding="utf-8"))


def placeholders(source: string.Template) -> set[str]:
    """The names a template's text refers to."""
    return set(source.get_identifiers())
