"""The gateway: the system's public HTTP face, forwarding to the api's versioned routes.

    GET /items, GET /items/{id}, POST /jobs, GET /jobs/{id}  ->  api /v1/...

The caller's trace context continues through the gateway's server span into its
client span and on to the api in the ``traceparent`` header. Answers of the api pass
through unchanged (status and body); when the api cannot be reached the gateway says
why: 504 timeout, 502 unreachable, 503 circuit open. GETs are retried (``RETRIES``),
POSTs are not.
"""

from __future__ import annotations

import random
from urllib.parse import quote

from opentelemetry.trace import Tracer

from demoapp.config import Settings
from demoapp.resilience import DependencyError, RetryPolicy, breakers
from demoapp.telemetry import circuit_event, setup_tracing
from demoapp.web import Handler, Request, Response, Route, Upstream, serve

PUBLIC_ROUTES = (
    ("GET", "/items", "/v1/items"),
    ("GET", "/items/{id}", "/v1/items/{id}"),
    ("POST", "/jobs", "/v1/jobs"),
    ("GET", "/jobs/{id}", "/v1/jobs/{id}"),
)
"""(method, public route, api route)."""
STATUS_OF_FAILURE = {"timeout": 504, "unavailable": 502, "circuit_open": 503}


class Gateway:
    def __init__(self, settings: Settings, tracer: Tracer) -> None:
        policy = RetryPolicy(settings.retries, settings.backoff_s, settings.max_backoff_s,
                             random.Random(settings.seed))
        self.api = Upstream("api", settings.api_url, tracer=tracer,
                            timeout_s=settings.timeout_s, policy=policy,
                            breaker=breakers(settings, circuit_event)("api"))

    def routes(self) -> list[Route]:
        return [Route(method, public, self._forward(target))
                for method, public, target in PUBLIC_ROUTES]

    def ready(self) -> dict[str, str]:
        return {"api": self.api.ready()}

    def _forward(self, target: str) -> Handler:
        def forward(request: Request) -> Response:
            path = target.format(**{k: quote(v, safe="") for k, v in request.params.items()})
            if request.query:
                path += "?" + request.query
            content_type = request.headers.get("Content-Type", "application/json")
            try:
                return self.api.request(request.method, path, request.body, content_type)
            except DependencyError as exc:
                return Response.json(STATUS_OF_FAILURE[exc.kind], {
                    "error": str(exc), "dependency": exc.dependency, "kind": exc.kind})

        return forward


def run(settings: Settings) -> int:
    tracer = setup_tracing("gateway")
    gateway = Gateway(settings, tracer)
    server = serve(role="gateway", port=settings.port, routes=gateway.routes(),
                   ready=gateway.ready, tracer=tracer)
    print(f"demo-gateway: listening on :{settings.port}, api at {settings.api_url}",
          flush=True)
    server.serve_forever()
    return 0
