"""The clnrm demo system: gateway -> api -> cache (Redis) and db (PostgreSQL), plus a worker.

One codebase, one image (``clnrm/demo-app``); the role is chosen by ``demo-app ROLE``.
Every service is instrumented by hand with the OpenTelemetry SDK API (semantic-convention
attributes, W3C trace context over HTTP headers and inside queued jobs) and carries the
resilience patterns chaos tests need, switched by environment variables (``config``).
Importing this package imports nothing else, so ``demo-app probe`` starts fast.
"""
