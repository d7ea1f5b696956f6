"""The core commands of ``clnrm``, one module per command (group).

They live here rather than beside their packages because those packages import pydantic
or docker when imported, and ``clnrm --help`` imports every mounted command module: a
module here imports only typer and :mod:`clnrm.cli_support` at module level.  Commands
whose package is cheap to import live beside it (``clnrm/chaos/cli.py``); the heavy
groups are delegated (``memory/cli.py``, ``clnrm/perf/cli.py``, ``ray_cluster/cli.py``).
:mod:`clnrm.cli` mounts them all.
"""
