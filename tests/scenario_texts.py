"""Scenario texts several test modules run: one that passes, one that fails with output
on both streams, one that does not load (a located error)."""

PASSING = """
    [meta]
    name = "greets"

    [[steps]]
    name = "greet"
    command = ["sh", "-c", "echo hello-from-step"]
    expected_output_regex = "^hello-from-step$"
"""

FAILING = """
    [meta]
    name = "exits_three"

    [[steps]]
    name = "boom"
    command = ["sh", "-c", "echo about-to-fail; echo went-wrong >&2; exit 3"]
"""

BROKEN = """
    [meta]
    name = "broken"

    [[steps]]
    name = "x"
    command = ["true"]
    expected_exit_code = "zero"
"""
