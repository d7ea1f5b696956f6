"""Files written by ``clnrm init``: small, runnable with the local images only."""

from __future__ import annotations

BASIC_TEST = '''\
# A first clnrm test: a web server and a client on an isolated network.
# Run it with:  clnrm run tests/basic.clnrm.toml
[meta]
name = "basic"
version = "1.0"
description = "busybox httpd answers a request from another container"

[services.web]
plugin = "network_service"
image = "clnrm/busybox:latest"
command = ["sh", "-c", """mkdir -p /www && echo hello-from-web > /www/index.html \\
  && httpd -f -p 8080 -h /www"""]
ports = [8080]

[[steps]]
name = "fetch_index"
command = ["wget", "-q", "-O", "-", "http://web:8080/"]
expected_output_regex = "hello-from-web"

[[steps]]
name = "run_id_reaches_steps"
command = ["sh", "-c", "echo run=$CLNRM_RUN_ID"]
expected_output_regex = "^run=[0-9a-f]+$"
'''
