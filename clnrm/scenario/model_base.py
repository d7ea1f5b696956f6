"""The base every TOML table model shares (kept apart to avoid import cycles)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base for every table: unknown keys are rejected here and reported by the loader.

    ``extra="forbid"`` makes pydantic name each unknown key; the loader turns
    those errors into warnings (or errors with ``--strict``), so a misspelt
    key is never silently dropped.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
