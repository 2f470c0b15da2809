"""Errors of the webhooks context."""

from __future__ import annotations

from ordersmith.platform.errors import NotFoundError, ServiceUnavailableError


class WebhookEndpointNotFoundError(NotFoundError):
    code = "webhook_endpoint_not_found"
    title = "Webhook endpoint not found"


class WebhookDeliveryNotFoundError(NotFoundError):
    code = "webhook_delivery_not_found"
    title = "Webhook delivery not found"


class WebhookSecretUnreadableError(ServiceUnavailableError):
    code = "webhook_secret_unreadable"
    title = "Webhook signing secret unreadable"
