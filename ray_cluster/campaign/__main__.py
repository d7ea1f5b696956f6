"""``python -m clnrm.swarm.campaign start ...``: the campaign CLI without the entry point."""

from clnrm.swarm.campaign.cli import campaign_app

campaign_app(prog_name="clnrm campaign")
