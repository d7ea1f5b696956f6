"""A realistic run result for trying the report formats without Docker.

Used by the report tests and handy for working on the HTML template:
``python -c "from clnrm.reports import write_html; from clnrm.reports.example import
example_run; write_html(example_run(), 'report.html')"``.  It holds one test
of each outcome and the span shapes a waterfall must cope with: nested calls
across services, an ERROR span, an orphan, a span without timestamps and a
second trace.
"""

from __future__ import annotations

from clnrm.otel.span import AttrValue, Span, SpanEvent
from clnrm.results import (
    Outcome,
    RunResult,
    StepResult,
    TestResult,
    ValidationResult,
    ValidationStatus,
)

T0 = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z in Unix nanoseconds


def span(name: str, service: str | None, span_id: str, parent: str | None = None, *,
         start_ms: float | None = None, end_ms: float | None = None, trace: str = "1",
         kind: str = "internal", status: str = "UNSET",
         attrs: dict[str, AttrValue] | None = None) -> Span:
    """A span ``start_ms``/``end_ms`` after :data:`T0`; ids are padded to OTLP hex widths."""
    return Span(
        name=name, trace_id=trace.rjust(32, "0"), span_id=span_id.rjust(16, "0"),
        parent_span_id=parent.rjust(16, "0") if parent else None,
        start_time_unix_nano=None if start_ms is None else T0 + int(start_ms * 1e6),
        end_time_unix_nano=None if end_ms is None else T0 + int(end_ms * 1e6),
        kind=kind, status=status, attributes=dict(attrs or {}),
        resource={"service.name": service} if service else {})


def checkout_spans() -> list[Span]:
    return [
        span("GET /checkout", "frontend", "a1", start_ms=0, end_ms=182, kind="server",
             attrs={"http.method": "GET", "http.route": "/checkout", "http.status_code": 200}),
        span("POST /api/orders", "frontend", "a2", "a1", start_ms=6, end_ms=170, kind="client"),
        span("POST /orders", "orders-api", "b1", "a2", start_ms=9, end_ms=166, kind="server",
             attrs={"http.route": "/orders"}),
        span("validate cart", "orders-api", "b2", "b1", start_ms=12, end_ms=31),
        span("GET cart:42", "orders-api", "b3", "b2", start_ms=14, end_ms=22, kind="client"),
        span("GET", "redis", "c1", "b3", start_ms=15, end_ms=20, kind="server",
             attrs={"db.system": "redis"}),
        span("INSERT orders", "orders-api", "b4", "b1", start_ms=34, end_ms=120, kind="client"),
        span("INSERT", "postgres", "d1", "b4", start_ms=36, end_ms=118, kind="server",
             attrs={"db.system": "postgresql",
                    "db.statement": "INSERT INTO orders VALUES ($1, $2)"}),
        span("publish order.created", "orders-api", "b5", "b1", start_ms=124, end_ms=131,
             kind="producer"),
        span("consume order.created", "mailer", "e1", "b5", start_ms=140, end_ms=175,
             kind="consumer"),
        span("render receipt", "mailer", "e2", "e1", start_ms=142, end_ms=171),
        span("startup", "orders-api", "f1", trace="2", start_ms=-400, end_ms=-380),
    ]


def declined_spans() -> list[Span]:
    charge = span("POST /charge", "payments", "p2", "p1", start_ms=8, end_ms=95, kind="server",
                  status="ERROR", attrs={"http.status_code": 402, "error.type": "CardDeclined"})
    charge.status_message = "card declined"
    charge.events.append(SpanEvent(name="exception", time_unix_nano=T0 + 90_000_000,
                                   attributes={"exception.type": "CardDeclined"}))
    return [
        span("POST /pay", "frontend", "p1", start_ms=0, end_ms=104, kind="server"),
        charge,
        span("fraud check", "payments", "p3", "p2", start_ms=12, end_ms=40),
        span("late retry", "payments", "p4", "gone", start_ms=60, end_ms=72),
        span("audit log", "auditor", "p5", "p2"),
        span("flush", "payments", "p6", "p2", start_ms=99),
    ]


def example_run() -> RunResult:
    """Four tests (passed, failed, error, skipped) with spans, steps and validations."""
    passed = TestResult(
        name="checkout_flow", file="tests/checkout.clnrm.toml", outcome=Outcome.PASSED,
        duration_s=2.41, services=["frontend", "orders-api", "redis", "postgres", "mailer"],
        steps=[
            StepResult(name="place_order", service=None,
                       command=["wget", "-q", "-O", "-", "http://frontend:8080/checkout"],
                       outcome=Outcome.PASSED, exit_code=0, stdout='{"order": 42}\n',
                       duration_s=0.21),
            StepResult(name="receipt_sent", service="mailer", command=["cat", "/out/receipt"],
                       outcome=Outcome.PASSED, exit_code=0, stdout="receipt for order 42\n",
                       duration_s=0.05),
        ],
        validations=[
            ValidationResult(validator="span", expectation="span 'POST /orders' kind=server",
                             status=ValidationStatus.PASS, expected="1 or more", seen="1",
                             declared_at="tests/checkout.clnrm.toml:18 [expect.span[0]]"),
            ValidationResult(validator="graph", expectation="edges frontend -> orders-api",
                             status=ValidationStatus.PASS,
                             declared_at="tests/checkout.clnrm.toml:24 [expect.graph]"),
            ValidationResult(validator="status", expectation="no span has status ERROR",
                             status=ValidationStatus.PASS, expected="0 ERROR spans", seen="0",
                             declared_at="tests/checkout.clnrm.toml:29 [expect.status]"),
        ],
        spans=checkout_spans(), digest="sha256:3f1c…")
    failed = TestResult(
        name="payment_declined", file="tests/payments.clnrm.toml", outcome=Outcome.FAILED,
        duration_s=1.37, services=["frontend", "payments"],
        message="step 'pay': exit code 1, expected 0; output: payment failed: card declined",
        steps=[
            StepResult(name="pay", command=["sh", "-c", "pay --card 4000-0000-0000-0002"],
                       outcome=Outcome.FAILED, exit_code=1, stdout="contacting payments\n",
                       stderr="payment failed: card declined\n", duration_s=0.4,
                       message="exit code 1, expected 0; output: payment failed: card declined"),
        ],
        validations=[
            ValidationResult(validator="status", expectation="span 'POST /charge' status=OK",
                             status=ValidationStatus.FAIL, message="1 span has status ERROR",
                             expected="status OK", seen="status ERROR (card declined)",
                             declared_at="tests/payments.clnrm.toml:31 [expect.status]"),
            ValidationResult(validator="counts", expectation="spans_total >= 3",
                             status=ValidationStatus.PASS, expected=">= 3", seen="6",
                             declared_at="tests/payments.clnrm.toml:35 [expect.counts]"),
        ],
        spans=declined_spans())
    error = TestResult(
        name="inventory_sync", file="tests/inventory.clnrm.toml", outcome=Outcome.ERROR,
        duration_s=60.2, message="service 'db' was not ready after 60 s (tcp 5432)\n"
        "--- last log lines of db ---\ninitdb: could not create directory: Permission denied")
    skipped = TestResult(name="nightly_load", file="tests/load.clnrm.toml",
                         outcome=Outcome.SKIPPED, message="not started: run was cancelled")
    return RunResult(run_id="5e1f0c2a9b7d", backend="docker",
                     started_at="2024-05-01T12:00:00+00:00", duration_s=64.1, seed=42,
                     tests=[passed, failed, error, skipped])
