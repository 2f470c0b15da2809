"""A local fake of Stripe's HTTP API (see `server.py`); resources in `payments.py` and `billing.py`."""

from tests.support.fake_stripe.server import (
    SECRET_KEY,
    FakeStripe,
    StripeError,
    event,
    serve_fake_stripe,
    sign_webhook,
)

__all__ = ["SECRET_KEY", "FakeStripe", "StripeError", "event", "serve_fake_stripe", "sign_webhook"]
