"""The composition root: builds the Litestar app and its background services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import dramatiq
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from ordersmith.admin import overrides as admin_overrides
from ordersmith.admin import routes as admin_routes
from ordersmith.api import (
    audit,
    billing,
    billing_usage,
    catalog,
    customers,
    follow_ups,
    fulfillment,
    identity,
    inventory,
    mail,
    order_actions,
    order_drafts,
    order_edits,
    orders,
    payment_webhooks,
    payments,
    reports,
    returns,
    sso,
    store,
    store_credit,
    users,
    webhook_endpoints,
)
from ordersmith.api.access import check_access_declared
from ordersmith.api.auth import enforce_access, provide_principal, provide_tenant_session
from ordersmith.api.bodies import StrictBodyRequest
from ordersmith.api.entitlements import LimitWarningMiddleware
from ordersmith.api.health import healthz, readyz
from ordersmith.api.middleware import RequestIdMiddleware
from ordersmith.api.nul_characters import NulCharacterMiddleware
from ordersmith.api.problems import EXCEPTION_HANDLERS, document_problems
from ordersmith.api.query_parameters import QueryParameterMiddleware, learn_query_parameters
from ordersmith.api.rate_limits import RequestWindows
from ordersmith.api.signup import slug_availability
from ordersmith.billing import gateway as billing_gateway
from ordersmith.billing import lifecycle as billing_lifecycle
from ordersmith.billing.jobs import BILLING_JOBS
from ordersmith.billing.request_metering import RequestMeter
from ordersmith.platform.database import Database
from ordersmith.platform.events import consumers
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.jobs import PLATFORM_JOBS
from ordersmith.platform.logging import configure_logging
from ordersmith.platform.mail import delivery as mail_delivery  # registers the email consumer
from ordersmith.platform.mail.sealing import use_secret_key
from ordersmith.platform.runtime import open_database
from ordersmith.platform.scheduler import run_scheduler
from ordersmith.platform.settings import Settings, load_settings
from ordersmith.platform.workers import (
    Actors,
    DatabaseHandle,
    PeriodicJob,
    declare_actors,
    make_broker,
    start_worker,
)
from ordersmith.tenants.payments import config as payments_config
from ordersmith.tenants.payments.config import PaymentsConfig
from ordersmith.tenants.schema import TENANT_SCHEMA
from ordersmith.tenants.webhooks import config as webhooks_config
from ordersmith.tenants.webhooks import sending as webhook_sending  # registers the fan-out consumer

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
# Every room's routes; each module declares who may call each of its routes.
ROUTES = [
    *identity.ROUTES,
    *store.ROUTES,
    *catalog.ROUTES,
    *customers.ROUTES,
    *inventory.ROUTES,
    *orders.ROUTES,
    *order_actions.ROUTES,
    *order_drafts.ROUTES,
    *order_edits.ROUTES,
    *payments.ROUTES,
    *payment_webhooks.ROUTES,
    *fulfillment.ROUTES,
    *returns.ROUTES,
    *store_credit.ROUTES,
    *follow_ups.ROUTES,
    *reports.ROUTES,
    *users.ROUTES,
    *audit.ROUTES,
    *mail.ROUTES,
    *sso.ROUTES,
    *billing_usage.ROUTES,
    *billing.ROUTES,
    *webhook_endpoints.ROUTES,
    *admin_routes.ROUTES,
    *admin_overrides.ROUTES,
]
# Periodic jobs of every room; rooms add theirs here as they grow.
JOBS: list[PeriodicJob] = [*PLATFORM_JOBS, *BILLING_JOBS, *billing_lifecycle.JOBS, *webhook_sending.JOBS]


def declare_process_actors(settings: Settings, broker: dramatiq.Broker, database: Database) -> Actors:
    """Declare every consumer and job actor; actors get a database pool of their own."""
    mail_delivery.configure(settings)
    webhooks_config.configure(webhooks_config.config_of(settings))
    # Actors run on Dramatiq's event loop thread, whose connections cannot be shared
    # with the API's loop: same server, separate pool.
    handle = DatabaseHandle(database.clone)
    return declare_actors(broker, consumers, JOBS, handle, settings.broker.namespace)


@dataclass
class Background:
    """In-process worker threads and the scheduler task of `ordersmith run`."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    worker: dramatiq.Worker | None = None


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, background: bool = False
) -> Litestar:
    """The API. With `background`, it also runs the scheduler, relay and worker threads."""
    settings = settings or load_settings()
    configure_logging(level=settings.log_level, as_json=settings.is_production)
    # Emails queued by requests are sealed with this app's secret key, not the environment's.
    use_secret_key(settings.secret_key)
    # Stripe (or the offline ledger) as this app's settings say, jobs and plan changes included.
    billing_gateway.configure(settings.billing)
    # Webhook secrets are sealed with this app's key; receivers must be public in production.
    webhooks_config.configure(webhooks_config.config_of(settings))
    # Merchants' own Stripe accounts go through the same API address as our billing.
    payments_config.configure(
        PaymentsConfig(
            secret_key=settings.secret_key,
            stripe_api_base=settings.billing.stripe_api_base or payments_config.STRIPE_API_BASE,
        )
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owns_database = database is None
        app.state.settings = settings
        app.state.signer = TokenSigner(settings.secret_key)
        app.state.request_windows = RequestWindows()
        app.state.tenant_schema = TENANT_SCHEMA
        app.state.database = database or await open_database(settings)
        app.state.broker = make_broker(settings.broker)
        app.state.request_meter = RequestMeter()
        app.state.request_meter.start(app.state.database)
        services = Background()
        if background:
            _start_background(settings, app.state.database, app.state.broker, services)
        _freeze_start_up_objects()
        try:
            yield
        finally:
            # The last flush of the API request counts, while the database is still open.
            await app.state.request_meter.stop()
            await _stop_background(services)
            app.state.broker.close()
            if owns_database:
                await app.state.database.dispose()

    route_handlers = [healthz, readyz, slug_availability, *ROUTES]
    for handler in route_handlers:
        document_problems(handler)
    app = Litestar(
        route_handlers=route_handlers,
        guards=[enforce_access],
        dependencies={
            "principal": Provide(provide_principal),
            "tenant_session": Provide(provide_tenant_session),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        # Inside the routes, so path parameters have names and a refusal is a problem document.
        middleware=[NulCharacterMiddleware, QueryParameterMiddleware],
        # JSON bodies decoded strictly: "1" is not a quantity, "true" is not a flag.
        request_class=StrictBodyRequest,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="Ordersmith API", version=VERSION, path="/api/schema"),
        debug=False,
        logging_config=None,  # ours, configured above
    )
    check_access_declared(app)
    learn_query_parameters(app)
    app.asgi_handler = RequestIdMiddleware(LimitWarningMiddleware(app.asgi_handler))
    return app


_frozen = False
# The collector's thresholds once start-up is frozen: a young collection every 50,000 net
# allocations (Python's default is 700, several per request), a middle one every 20 of
# those and a full one every 100 middle ones. A request's garbage is mostly freed by
# reference counting; what cycles leave behind waits a little longer, and far fewer
# passes stall the requests in flight (placement p99 145 -> about 100 ms in `make bench`).
GC_THRESHOLDS = (50_000, 20, 100)


def _freeze_start_up_objects() -> None:
    """Keep what start-up built (modules, metadata, routes) out of the collector's full passes.

    Those objects live as long as the process; scanning them again in every full
    collection stalled all requests in flight for tens of milliseconds. Once per process:
    a test run starting many apps freezes only the first one's. Then the collector runs
    less often (`GC_THRESHOLDS`).
    """
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        _frozen = True


def _start_background(
    settings: Settings, database: Database, broker: dramatiq.Broker, services: Background
) -> None:
    actors = declare_process_actors(settings, broker, database)
    services.worker = start_worker(broker, settings.broker.in_process_threads)
    services.tasks.append(
        asyncio.create_task(
            run_scheduler(database, JOBS, actors.enqueue_job, consumers, actors.publish, services.stop)
        )
    )


async def _stop_background(services: Background) -> None:
    services.stop.set()
    for task in services.tasks:
        await task
    if services.worker is not None:
        await asyncio.to_thread(services.worker.stop)
