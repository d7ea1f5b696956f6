"""``python -m ray_cluster run ...``: the swarm CLI without the ``clnrm`` entry point."""

from ray_cluster.cli import swarm_app

swarm_app(prog_name="clnrm swarm")
