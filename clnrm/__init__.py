"""clnrm: hermetic integration tests as TOML, run in real Docker, judged on spans.

Kept import-light on purpose: ``clnrm --help`` must start fast, so heavy
dependencies (docker, ray, chromadb, sklearn) are imported where used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
