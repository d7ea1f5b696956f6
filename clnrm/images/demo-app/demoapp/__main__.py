"""``demo-app ROLE``: run one service of the demo system, or probe one's health endpoint.

    demo-app gateway | api | worker     serve (port: $PORT, else 8080 / 8000 / 8001)
    demo-app probe URL [--timeout S]    exit 0 iff URL answers 200 (readiness checks)

The role may also come from ``$DEMO_ROLE``. Heavy imports (the SDK, redis, psycopg)
happen only inside the chosen role, so ``probe`` costs little more than the interpreter.
"""

from __future__ import annotations

import argparse
import os
import sys

ROLES = ("gateway", "api", "worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="demo-app", description="Run one service of the clnrm demo system, or probe "
        "a health endpoint (exit 0 iff it answers 200).")
    parser.add_argument("role", nargs="?", default=os.environ.get("DEMO_ROLE"),
                        choices=(*ROLES, "probe"))
    parser.add_argument("url", nargs="?", help="probe: the URL to GET")
    parser.add_argument("--timeout", type=float, default=2.0, help="probe: seconds")
    args = parser.parse_args(argv)
    if args.role is None:
        parser.error("name a role (gateway, api, worker) or set DEMO_ROLE")
    if args.role == "probe":
        from demoapp.probe import probe

        if not args.url:
            parser.error("probe needs a URL")
        return probe(args.url, timeout_s=args.timeout)

    from demoapp.config import Settings

    settings = Settings.from_env(args.role)
    if args.role == "gateway":
        from demoapp.gateway import run
    elif args.role == "api":
        from demoapp.api import run
    else:
        from demoapp.worker import run
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
