"""Files written by ``clnrm init``: small, runnable with the local images only."""

from __future__ import annotations

BASIC_TEST = '''\
# A first clnrm test: an instrumented service emits OpenTelemetry spans, and the
# test is judged on them. Run it with:  clnrm run tests/basic.clnrm.toml
# (the images are local: `clnrm images build` makes them once; nothing is pulled)
[meta]
name = "basic"
version = "1.0"
description = "a service emits spans over OTLP; the test asserts on one of them"

# clnrm gives every container OTEL_EXPORTER_OTLP_ENDPOINT (this test's own receiver),
# OTEL_SERVICE_NAME and TRACEPARENT, so any OpenTelemetry SDK reports to the test.
# clnrm/python-otel has the SDK and `clnrm-emit-spans`, a tiny instrumented program.
[services.shop]
image = "clnrm/python-otel:latest"

# Steps run inside a service (or, without `service`, in clnrm/busybox on the test
# network). This one stands for a request to your code: it emits a span tree.
[[steps]]
name = "place_order"
service = "shop"
command = ["clnrm-emit-spans", """{"name": "order.place", "kind": "server",
  "attrs": {"order.id": "42"},
  "children": [{"name": "payment.charge", "kind": "client"}]}"""]
expected_output_regex = "emitted"

# The headline: the test passes only if the system's spans show this happened.
# Try it: change "42" to "43" and the run fails, naming this table's line.
[[expect.span]]
name = "order.place"
kind = "server"
attrs.all = { "order.id" = "42" }
'''
