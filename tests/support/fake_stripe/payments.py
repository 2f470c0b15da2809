"""The fake's payment resources (a merchant's own account): PaymentIntents, refunds, disputes.

PaymentIntents behave like Stripe's with `capture_method=manual`: confirming holds the
amount (`requires_capture`, `amount_capturable`), captures may be partial, and a capture
with `final_capture=false` keeps the rest capturable only when the intent asked for
multicapture (`payment_method_options[card][request_multicapture]=if_available`); else
the rest is released. The test payment methods choose the outcome, as Stripe's do:
`pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined (402, the intent left in
`requires_payment_method`), `pm_card_authenticationRequired` needs 3-D Secure
(`requires_action`; `complete_authentication` plays the customer finishing it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.fake_stripe.server import FakeStripe, StripeError, StripeRequest, event, now, route

VISA = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"
AUTHENTICATION_REQUIRED = "pm_card_authenticationRequired"


def _int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer") from None
    if number < 1:
        raise StripeError(400, f"{name} must be at least 1", code="parameter_invalid_integer")
    return number


def _charge(fake: FakeStripe, intent: dict[str, Any]) -> dict[str, Any]:
    charge = {
        "id": fake.new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "captured": False,
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "refunded": False,
        "created": now(),
    }
    fake.store("charge", charge)
    intent["latest_charge"] = charge["id"]
    return charge


def _confirm(fake: FakeStripe, intent: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    method = intent.get("payment_method") or "pm_card_visa"
    if method == DECLINED:
        error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        }
        intent.update(status="requires_payment_method", last_payment_error=error)
        return 402, {"error": {**error, "payment_intent": intent}}
    if method == AUTHENTICATION_REQUIRED:
        intent.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
        return 200, intent
    _authorize(fake, intent)
    return 200, intent


def _authorize(fake: FakeStripe, intent: dict[str, Any]) -> None:
    _charge(fake, intent)
    if intent["capture_method"] == "manual":
        intent.update(status="requires_capture", amount_capturable=intent["amount"], next_action=None)
    else:
        intent.update(status="succeeded", amount_received=intent["amount"], next_action=None)


@route("POST", "/v1/payment_intents")
def create_payment_intent(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    params = request.params
    intent: dict[str, Any] = {
        "id": fake.new_id("pi"),
        "object": "payment_intent",
        "amount": _int(params.get("amount"), "amount"),
        "currency": params.get("currency"),
        "capture_method": params.get("capture_method", "automatic"),
        "payment_method": params.get("payment_method"),
        "payment_method_options": params.get("payment_method_options", {}),
        "metadata": params.get("metadata", {}),
        "status": "requires_payment_method" if not params.get("payment_method") else "requires_confirmation",
        "amount_capturable": 0,
        "amount_received": 0,
        "latest_charge": None,
        "last_payment_error": None,
        "next_action": None,
        "created": now(),
        "livemode": False,
    }
    fake.store("payment_intent", intent)
    if params.get("confirm") == "true":
        return _confirm(fake, intent)
    return 200, intent


@route("GET", "/v1/payment_intents/{intent_id}")
def retrieve_payment_intent(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    return 200, fake.get("payment_intent", request.path_params["intent_id"])


@route("POST", "/v1/payment_intents/{intent_id}/confirm")
def confirm_payment_intent(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    intent = fake.get("payment_intent", request.path_params["intent_id"])
    if request.params.get("payment_method"):
        intent["payment_method"] = request.params["payment_method"]
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise StripeError(
            400, f"This PaymentIntent's status is {intent['status']}.", code="payment_intent_unexpected_state"
        )
    return _confirm(fake, intent)


def _multicapture(intent: dict[str, Any]) -> bool:
    card = (intent.get("payment_method_options") or {}).get("card") or {}
    return card.get("request_multicapture") == "if_available"


@route("POST", "/v1/payment_intents/{intent_id}/capture")
def capture_payment_intent(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    intent = fake.get("payment_intent", request.path_params["intent_id"])
    if intent["status"] != "requires_capture":
        raise StripeError(
            400,
            f"This PaymentIntent could not be captured because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
        )
    capturable = intent["amount_capturable"]
    amount = _int(request.params.get("amount_to_capture", capturable), "amount_to_capture")
    if amount > capturable:
        raise StripeError(
            400,
            f"The amount to capture ({amount}) is greater than the amount capturable ({capturable}).",
            code="amount_too_large",
        )
    final = request.params.get("final_capture", "true") != "false" or not _multicapture(intent)
    intent["amount_received"] += amount
    intent["amount_capturable"] = 0 if final else capturable - amount
    if intent["amount_capturable"] == 0:
        intent["status"] = "succeeded"
    charge = fake.get("charge", intent["latest_charge"])
    charge.update(amount_captured=intent["amount_received"], captured=True)
    return 200, intent


@route("POST", "/v1/payment_intents/{intent_id}/cancel")
def cancel_payment_intent(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    intent = fake.get("payment_intent", request.path_params["intent_id"])
    if intent["status"] in ("succeeded", "canceled"):
        raise StripeError(
            400,
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
        )
    intent.update(status="canceled", amount_capturable=0, canceled_at=now())
    return 200, intent


@route("POST", "/v1/refunds")
def create_refund(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    intent = fake.get("payment_intent", request.params.get("payment_intent", ""))
    charge = fake.get("charge", intent["latest_charge"]) if intent["latest_charge"] else None
    if charge is None or charge["amount_captured"] == 0:
        raise StripeError(
            400, "This PaymentIntent has no captured charge to refund.", code="charge_not_captured"
        )
    left = charge["amount_captured"] - charge["amount_refunded"]
    amount = _int(request.params.get("amount", left), "amount")
    if amount > left:
        raise StripeError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            code="amount_too_large",
        )
    return 200, _refund(fake, intent, charge, amount, request.params.get("metadata", {}))


def _refund(
    fake: FakeStripe, intent: dict[str, Any], charge: dict[str, Any], amount: int, metadata: dict[str, Any]
) -> dict[str, Any]:
    """A Refund of part of the charge, as the API and the dashboard both make one."""
    refund = {
        "id": fake.new_id("re"),
        "object": "refund",
        "amount": amount,
        "currency": intent["currency"],
        "charge": charge["id"],
        "payment_intent": intent["id"],
        "metadata": metadata,
        "status": "succeeded",
        "created": now(),
    }
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
    return fake.store("refund", refund)


# --- what happens at Stripe without this app asking (for webhook tests) ---------------


def complete_authentication(fake: FakeStripe, intent_id: str) -> dict[str, Any]:
    """The customer finishes 3-D Secure: the intent now holds the amount. Returns the intent."""
    with fake._lock:
        intent = fake.get("payment_intent", intent_id)
        _authorize(fake, intent)
        return dict(intent)


def refund_in_dashboard(fake: FakeStripe, intent_id: str, amount: int) -> dict[str, Any]:
    """The merchant refunds in Stripe's dashboard; returns the charge as `charge.refunded` carries it.

    Like the API, the dashboard makes a Refund (`refunds_of` finds it, for `refund.created`).
    """
    with fake._lock:
        intent = fake.get("payment_intent", intent_id)
        charge = fake.get("charge", intent["latest_charge"])
        _refund(fake, intent, charge, amount, {})
        return dict(charge)


def refunds_of(fake: FakeStripe, intent_id: str) -> list[dict[str, Any]]:
    """The Refunds of a PaymentIntent, oldest first."""
    return [
        refund for refund in fake.objects.get("refund", {}).values() if refund["payment_intent"] == intent_id
    ]


def with_refunds_listed(fake: FakeStripe, charge: dict[str, Any]) -> dict[str, Any]:
    """The charge as API versions before 2022-11-15 send it: with its refunds, newest first.

    Later versions leave the list out of the charge (and so of `charge.refunded`).
    """
    refunds = [
        refund for refund in fake.objects.get("refund", {}).values() if refund["charge"] == charge["id"]
    ]
    listed = list(reversed(refunds))
    return {
        **charge,
        "refunds": {
            "object": "list",
            "data": listed,
            "has_more": False,
            "url": f"/v1/charges/{charge['id']}/refunds",
        },
    }


def open_dispute(
    fake: FakeStripe, intent_id: str, amount: int, reason: str = "fraudulent", *, inquiry: bool = False
) -> dict[str, Any]:
    """The cardholder disputes the charge with their bank; returns the dispute object.

    An `inquiry` is the bank asking questions first (`warning_needs_response`): no chargeback yet.
    """
    with fake._lock:
        intent = fake.get("payment_intent", intent_id)
        dispute = {
            "id": fake.new_id("dp"),
            "object": "dispute",
            "amount": amount,
            "currency": intent["currency"],
            "charge": intent["latest_charge"],
            "payment_intent": intent_id,
            "reason": reason,
            "status": "warning_needs_response" if inquiry else "needs_response",
            "created": now(),
        }
        return fake.store("dispute", dispute)


def close_dispute(fake: FakeStripe, dispute_id: str, status: str) -> dict[str, Any]:
    """The bank decides: `won`, `lost`, or `warning_closed` (an inquiry that went no further).

    Returns the dispute as `charge.dispute.closed` carries it.
    """
    with fake._lock:
        dispute = fake.get("dispute", dispute_id)
        dispute["status"] = status
        return dict(dispute)


def intent_event(fake: FakeStripe, kind: str, intent_id: str, **extra: Any) -> dict[str, Any]:
    """A webhook event about an intent as it stands now (`payment_intent.succeeded`, …)."""
    return event(kind, {**fake.get("payment_intent", intent_id), **extra})


def payment_intents(fake: FakeStripe) -> list[dict[str, Any]]:
    """Every PaymentIntent the fake holds, oldest first."""
    return list(fake.objects.get("payment_intent", {}).values())


@contextmanager
def refund_answers_lost(fake: FakeStripe, intent_id: str | None = None) -> Iterator[None]:
    """Stripe makes the block's refunds (of one PaymentIntent, or all); their answers never arrive (503)."""
    answer = fake.handle

    def lose(method: str, path: str, headers: dict[str, str], body: bytes, query: str) -> tuple[int, Any]:
        status, reply = answer(method, path, headers, body, query)
        if path == "/v1/refunds" and (intent_id is None or intent_id in body.decode()):
            return 503, {"error": {"type": "api_error", "message": "connection lost"}}
        return status, reply

    fake.handle = lose  # type: ignore[method-assign]
    try:
        yield
    finally:
        fake.handle = answer  # type: ignore[method-assign]


def fail_at_stripe(
    fake: FakeStripe, refund_id: str, status: str = "failed", reason: str = ""
) -> dict[str, Any]:
    """Stripe gives up on a refund days later: the money stays with the merchant. Returns the refund."""
    refund = fake.get("refund", refund_id)
    charge = fake.get("charge", refund["charge"])
    refund.update(status=status, failure_reason=reason or None)
    charge.update(amount_refunded=charge["amount_refunded"] - refund["amount"], refunded=False)
    return dict(refund)
