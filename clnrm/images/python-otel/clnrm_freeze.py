"""Starts freezegun when clnrm sets CLNRM_FREEZE_CLOCK ([determinism] freeze_clock).

Loaded by ``clnrm_freeze.pth`` at interpreter start-up, so every Python
program in a clnrm/python-otel container sees a wall clock that *starts* at the
frozen instant and then ticks (``tick=True``): timestamps, ``datetime.now()``
and OpenTelemetry span times are reproducible, while sleeps and timeouts,
which use the monotonic clock, still work.
"""

import os

_value = os.environ.get("CLNRM_FREEZE_CLOCK")
if _value:
    try:
        import freezegun

        freezegun.freeze_time(_value, tick=True).start()
    except Exception as exc:  # a bad value must not break every program in the container
        import sys

        print(f"clnrm_freeze: ignoring CLNRM_FREEZE_CLOCK={_value!r}: {exc}", file=sys.stderr)
