"""``clock_skew``: one service's wall clock runs ahead or behind, the host's untouched.

Linux has no per-container wall clock (time namespaces cover only the monotonic and
boot clocks), and changing the host's clock would skew every test on the machine.  So
the skew is applied where clnrm's images already control time: ``clnrm/python-otel``
(the base of every demo image) starts freezegun from a ``.pth`` file at interpreter
start, and that hook also reads ``/etc/clnrm/clock_skew`` (seconds) and starts the
clock at "now + skew", ticking.  The fault writes the file and restarts the container so
its programs start again under the skewed clock; rollback deletes it and restarts.

What shifts: everything Python in the target reads from the wall clock, span
timestamps included, so the target's spans sit ``offset`` away from its callers'.
Non-Python programs in the image (PostgreSQL, Redis) keep the real time.
"""

from __future__ import annotations

import glob
import math
import re
import time
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from clnrm.chaos.base import Fault, FaultConfig
from clnrm.chaos.faults import _linux
from clnrm.errors import ChaosError
from clnrm.scenario.durations import Duration, parse_duration

if TYPE_CHECKING:
    from clnrm.chaos.context import UndoEnv

SKEW_FILE = "/etc/clnrm/clock_skew"
"""Read by ``clnrm_freeze.py`` in clnrm/python-otel (keep the two in step)."""
_HOOK_GLOB = "usr/local/lib/python3*/dist-packages/clnrm_freeze.py"


def parse_offset(value: object) -> float:
    """Signed seconds: ``3600``, ``-90``, ``"+1h"``, ``"-1m30s"``; zero is refused."""
    wanted = f"expected an offset such as \"+1h\", \"-30s\" or -90, got {value!r}"
    try:
        if isinstance(value, str):
            text = value.strip()
            sign = -1.0 if text.startswith("-") else 1.0
            seconds = sign * parse_duration(text[1:] if text[:1] in "+-" else text)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            seconds = math.copysign(parse_duration(abs(float(value))), float(value))
        else:
            raise ValueError(wanted)
    except ValueError as exc:
        raise ValueError(wanted if str(exc) == wanted else f"{wanted} ({exc})") from exc
    if seconds == 0 or math.isnan(seconds):
        raise ValueError("offset must not be zero")
    return seconds


Offset = Annotated[float, BeforeValidator(parse_offset)]
"""A signed duration: ahead (``"+1h"``, ``3600``) or behind (``"-30s"``, ``-30``)."""


class ClockSkewConfig(FaultConfig):
    offset: Offset
    """How far the target's wall clock is from the real time: "+1h" ahead, "-30s" behind."""
    timeout: Duration = Field(default=10.0, le=300)
    """Grace period of the restarts that apply and remove the skew."""


class ClockSkew(Fault[ClockSkewConfig]):
    """The target's Python programs see the wall clock ``offset`` off, from a restart on."""

    type = "clock_skew"
    category: ClassVar[Literal["application"]] = "application"
    summary = "the target's wall clock runs ahead/behind (python-otel images; restarts it)"
    Config = ClockSkewConfig

    def inject(self) -> str:
        cfg = self.config
        self._check_image()
        code, out = _linux.exec_as_root(
            self.ctx.api, self.cid,
            ["sh", "-c", f'mkdir -p /etc/clnrm && printf %s "$0" > {SKEW_FILE} && '
                         f'chmod 0644 {SKEW_FILE}', repr(cfg.offset)])
        if code != 0:
            raise ChaosError(f"could not write {SKEW_FILE}: {out.strip()[-200:]}",
                             fault=self.type, target=self.target)
        seconds = self._restart(cfg.timeout)
        return f"{self.target}'s clock runs {cfg.offset:+g} s off (restarted in {seconds:.1f} s)"

    def _check_image(self) -> None:
        root = f"/proc/{self.ctx.container_pid(self.target)}/root/"
        hooks = glob.glob(root + _HOOK_GLOB)
        image = self.ctx.api.inspect_container(self.cid)["Config"].get("Image")
        if not hooks:
            raise ChaosError(f"clock_skew needs a clnrm/python-otel based image; {image} has "
                             "no clnrm_freeze hook", fault=self.type, target=self.target,
                             hint="only Python programs of clnrm/python-otel images can run "
                                  "on a skewed clock; build the service's image FROM "
                                  "clnrm/python-otel:latest")
        with open(hooks[0], encoding="utf-8") as fh:
            if not re.search(re.escape(SKEW_FILE), fh.read()):
                raise ChaosError(f"{image} was built from an older clnrm/python-otel whose "
                                 "clock hook cannot skew", fault=self.type, target=self.target,
                                 hint="rebuild the images: clnrm images build")

    def _restart(self, timeout: float) -> float:
        started = time.monotonic()
        self.ctx.api.restart(self.cid, timeout=math.ceil(timeout))
        self.ctx.restart(self.target)  # release the start gate, reinstall proxies
        return time.monotonic() - started

    def rollback(self) -> str:
        state = self.ctx.state(self.target)
        deleted = _linux.delete_in_container(self.ctx.api, self.cid, SKEW_FILE)
        if not state.get("Running"):
            return f"{deleted}; {self.target} is down, it starts with the real time"
        seconds = self._restart(self.config.timeout)
        return f"{deleted}; {self.target} restarted with the real time in {seconds:.1f} s"

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        cid = str(record.get("container", ""))
        if not cid or _linux.container_state(env.api, cid) is None:
            return "container gone: nothing to undo"
        return (f"{_linux.delete_in_container(env.api, cid, SKEW_FILE)} "
                "(programs started from now on see the real time)")


FAULTS: list[type[Fault[Any]]] = [ClockSkew]
