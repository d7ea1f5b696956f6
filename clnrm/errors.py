"""Every error clnrm raises on purpose.

The CLI turns any ``ClnrmError`` into one clear message and exit code 2; anything
else is a bug and shows a traceback only with ``--debug``.  Failed expectations
are *results*, never exceptions.

    ClnrmError
    ├── ScenarioError          bad test file: file, key path, line, hint
    ├── PluginError            a plugin is missing, broken or rejects its config
    ├── BackendError           the engine is unreachable or refused an operation
    │   └── ImageMissingError  an image is not present locally (we never pull)
    ├── ReadinessError         a service never became ready (last log lines attached)
    ├── PerformanceError       no comparable baseline: scenario, fingerprint, hint
    └── InterruptedRun         Ctrl-C / SIGTERM arrived; cleanup has run
"""

from __future__ import annotations

from pathlib import Path


class ClnrmError(Exception):
    """Root of clnrm's errors; ``str()`` is the whole user-facing message."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message


class ScenarioError(ClnrmError):
    """A test file cannot be used as written.

    Carries where the problem is so editors and CI annotations can jump there:
    ``file`` and 1-based ``line`` (``None`` when not known) and the dotted
    ``key_path`` such as ``expect.span[2].kind``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = Path(file) if file is not None else None
        self.line = line
        self.key_path = key_path

    @property
    def location(self) -> str:
        """``file:line`` (or just ``file``) for prefixing messages."""
        parts = [str(self.file) if self.file else "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
        return ":".join(parts)

    def __str__(self) -> str:
        key = f" [{self.key_path}]" if self.key_path else ""
        text = f"{self.location}:{key} {self.message}"
        if self.hint:
            text += f"\nHint: {self.hint}"
        return text


class PluginError(ClnrmError):
    """A service plugin is unknown, failed to load, or rejected its configuration."""

    def __init__(self, message: str, *, plugin: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.plugin = plugin


class BackendError(ClnrmError):
    """The execution backend could not do what the run needs (engine down, API error)."""

    def __init__(self, message: str, *, backend: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.backend = backend


class ImageMissingError(BackendError):
    """An image is not present locally; clnrm never pulls, so the user must build or load it."""

    def __init__(self, image: str, *, hint: str | None = None) -> None:
        super().__init__(f"image {image!r} is not present in the local Docker engine "
                         "(clnrm never pulls images)", backend="docker", hint=hint)
        self.image = image


class ReadinessError(ClnrmError):
    """A service did not become ready in time; the message has the check, limit and log tail."""

    def __init__(self, message: str, *, service: str, logs: str = "",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.service = service
        self.logs = logs


class InterruptedRun(ClnrmError):
    """The run was interrupted by a signal; raised after cleanup so callers can exit."""

    exit_code = 130

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}; all containers and networks of "
                         "this run were removed")
        self.signal_name = signal_name


class ChaosError(ClnrmError):
    """A fault could not be injected or rolled back, or targets something outside the run."""

    def __init__(self, message: str, *, fault: str | None = None, target: str | None = None,
                 hint: str | None = None) -> None:
        prefix = f"chaos fault {fault!r}" + (f" on {target!r}" if target else "") if fault else ""
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)
        self.fault = fault
        self.target = target


class PerformanceError(ClnrmError):
    """A baseline is missing, unreadable or from another environment; the message names the
    scenario and fingerprint asked for and the hint says which ones exist."""

    def __init__(self, message: str, *, scenario: str | None = None,
                 fingerprint: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.scenario = scenario
        self.fingerprint = fingerprint
