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
command = ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www"]
ports = [8080]

[[steps]]
name = "fetch_index"
command = ["wget", "-q", "-O", "-", "http://web:8080/"]
expected_output_regex = "hello-from-web"

[[steps]]
name = "no_route_out"
command = ["sh", "-c", "ip route | grep -q default && echo routed || echo isolated"]
expected_output_regex = "isolated"
'''
