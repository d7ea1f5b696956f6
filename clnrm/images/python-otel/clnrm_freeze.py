"""Starts freezegun when clnrm sets CLNRM_FREEZE_CLOCK ([determinism] freeze_clock), or when
the chaos fault ``clock_skew`` has written a skew file.

Loaded by ``clnrm_freeze.pth`` at interpreter start-up, so every Python
program in a clnrm/python-otel container sees a wall clock that *starts* at the
frozen instant and then ticks (``tick=True``): timestamps, ``datetime.now()``
and OpenTelemetry span times are reproducible, while sleeps and timeouts,
which use the monotonic clock, still work.

``/etc/clnrm/clock_skew`` (seconds, may be negative or fractional) shifts that
clock: the programs of the container see "now + skew" without the host's clock
being touched (clocks are not namespaced, so this is the only per-container way).
Only programs started after the file was written are affected, which is why the
fault restarts the container.
"""

import os

SKEW_FILE = "/etc/clnrm/clock_skew"


def _skew_seconds():
    try:
        with open(SKEW_FILE, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return 0.0
    return float(text) if text else 0.0


def _start():
    value = os.environ.get("CLNRM_FREEZE_CLOCK")
    skew = _skew_seconds()
    if not value and not skew:
        return
    import datetime

    import freezegun

    if not skew:
        start = value
    elif value:
        from dateutil import parser

        start = parser.parse(value) + datetime.timedelta(seconds=skew)
    else:
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=skew)
    freezegun.freeze_time(start, tick=True).start()


try:
    _start()
except Exception as exc:  # a bad value must not break every program in the container
    import sys

    print(f"clnrm_freeze: ignoring CLNRM_FREEZE_CLOCK={os.environ.get('CLNRM_FREEZE_CLOCK')!r} "
          f"/ {SKEW_FILE}: {exc}", file=sys.stderr)
