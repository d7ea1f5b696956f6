"""``clnrm plugins``: the installed service plugins."""

from __future__ import annotations

from clnrm.cli_support import FormatOpt, OutputFormat, console, fail


def plugins(fmt: FormatOpt = OutputFormat.human) -> None:
    """List the installed service plugins."""
    from clnrm.errors import ClnrmError
    from clnrm.output import emit, expect_json
    from clnrm.plugins import service_types

    expect_json("plugins" if fmt is OutputFormat.json else None)
    try:
        types = service_types()
    except ClnrmError as exc:
        fail(exc)
    if fmt is OutputFormat.json:
        emit("plugins", [{"name": name, "description": st.description,
                          "module": type(st).__module__}
                         for name, st in sorted(types.items())])
        return
    for name, st in sorted(types.items()):
        console().print(f"{name:20} {st.description}")
