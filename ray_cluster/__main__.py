"""``python -m clnrm.swarm run ...``: the swarm CLI without the ``clnrm`` entry point."""

from clnrm.swarm.cli import swarm_app

swarm_app(prog_name="clnrm swarm")
