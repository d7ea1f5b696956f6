"""Services built from the user's own code: ``build = {context, dockerfile, args, target}``.

Compose's meaning, with clnrm's rules: nothing is pulled, so every ``FROM`` must name
an image present on this engine (``--image-map`` may rewrite it to one); the image is
tagged ``clnrm/build-<service>:<hash>`` where the hash covers the context's files
(minus ``.dockerignore``), the Dockerfile, the args, the target and the base images'
ids, so an unchanged context is never rebuilt and a changed byte always is. Images
carry the catalogue's labels (``clnrm.image``, ``clnrm.image.hash``, ``clnrm.image.name``)
plus ``clnrm.build.key`` (service and context), which lets a rebuild drop the image it
replaces.

Import-light: ``docker`` is reached only through the client passed in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clnrm.errors import ScenarioError
from clnrm.images._build import _guard_engine
from clnrm.images._catalog import with_default_tag
from clnrm.images._engine import build_from_context, local_image, make_context
from clnrm.images._model import BUSYBOX_IMAGE, HASH_LABEL, IMAGE_LABEL, NAME_LABEL
from clnrm.scenario.model import Build, Scenario

BUILD_KEY_LABEL: Final = "clnrm.build.key"
"""sha256 of (service, absolute context): images of one build, old and new, share it."""
BUILD_CONTEXT_LABEL: Final = "clnrm.build.context"
_SCHEMA: Final = "clnrm.build/1"
_SLUG: Final = re.compile(r"[^a-z0-9._-]+")
_VAR: Final = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")
_OUTSIDE_DOCKERFILE: Final = ".clnrm.Dockerfile"

BuildSink = Callable[[str, str], None]
"""``(test name, message)``: progress of a build (the runner's event callback)."""


@dataclass(frozen=True)
class UserBuild:
    """One service's build, resolved against its test file: what to hash and send."""

    service: str
    test: str
    source: str | None
    context: Path
    dockerfile: Path
    args: dict[str, str]
    target: str | None

    @property
    def where(self) -> str:
        return f"services.{self.service}.build"

    @property
    def repository(self) -> str:
        return "clnrm/build-" + (_SLUG.sub("-", self.service.lower()).strip("-._") or "service")

    @property
    def key(self) -> str:
        text = json.dumps([self.service, str(self.context)])
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class BuildOutcome:
    """What :func:`build_user_image` did: the tag now to run, and whether it was cached."""

    service: str
    tag: str
    image_id: str
    cached: bool
    seconds: float
    content_hash: str


def needs_builds(scenarios: Iterable[Scenario]) -> bool:
    return any(cfg.build is not None for sc in scenarios for cfg in sc.services.values())


def build_service_images(
    scenarios: list[Scenario],
    client: Any,
    *,
    image_map: dict[str, str] | None = None,
    on_event: BuildSink | None = None,
    force: bool = False,
) -> list[Scenario]:
    """Build every ``build`` service of ``scenarios``; return them with ``image`` set to the tag.

    Runs before planning, so the rest of the run sees plain ``image`` services. One
    build per distinct content hash in the run. Raises ``ScenarioError`` (located in the
    test file or the Dockerfile) for a bad context or a base image that is not local,
    ``BackendError`` for a failed build.
    """
    if not needs_builds(scenarios):
        return scenarios
    sink: BuildSink = on_event or (lambda test, message: None)
    done: dict[str, BuildOutcome] = {}
    resolved: list[Scenario] = []
    for sc in scenarios:
        services = dict(sc.services)
        for name, cfg in sc.services.items():
            if cfg.build is None:
                continue
            build = resolve_build(sc, name, cfg.build)
            outcome = build_user_image(client, build, image_map=image_map or {}, force=force,
                                       emit=lambda m, t=sc.name: sink(t, m), done=done)
            services[name] = cfg.model_copy(update={"image": outcome.tag, "build": None})
        resolved.append(sc.model_copy(update={"services": services}))
    return resolved


def build_for_run(scenarios: list[Scenario], backend: Any, *, image_map: dict[str, str],
                  on_event: BuildSink) -> list[Scenario]:
    """The runner's entry: build services on the run's engine before anything is planned."""
    if not needs_builds(scenarios):
        return scenarios
    client = getattr(backend, "client", None)
    if client is None:
        sc = next(s for s in scenarios if needs_builds([s]))
        name = next(n for n, c in sc.services.items() if c.build is not None)
        raise ScenarioError(
            f"service '{name}' is built from a context, which needs the Docker engine",
            file=sc.source, key_path=f"services.{name}.build",
            hint="run it with --backend docker (the default)")
    return build_service_images(scenarios, client, image_map=image_map, on_event=on_event)


def resolve_build(scenario: Scenario, service: str, build: Build) -> UserBuild:
    """Resolve ``context`` against the test file's folder and check the files exist."""
    base = Path(scenario.source).resolve().parent if scenario.source else Path.cwd()
    context = (base / build.context).resolve()
    where = f"services.{service}.build"
    if not context.is_dir():
        raise ScenarioError(
            f"build context {build.context!r} of service '{service}' is not a folder "
            f"(resolved to {context})", file=scenario.source, key_path=f"{where}.context",
            hint="context is relative to the test file's folder")
    dockerfile = (context / build.dockerfile).resolve()
    if not dockerfile.is_file():
        raise ScenarioError(
            f"Dockerfile {build.dockerfile!r} of service '{service}' not found ({dockerfile})",
            file=scenario.source, key_path=f"{where}.dockerfile",
            hint="dockerfile is relative to the context folder (default: Dockerfile)")
    return UserBuild(service=service, test=scenario.name, source=scenario.source,
                     context=context, dockerfile=dockerfile, args=dict(build.args),
                     target=build.target)


def build_user_image(
    client: Any,
    build: UserBuild,
    *,
    image_map: dict[str, str],
    emit: Callable[[str], None],
    force: bool = False,
    done: dict[str, BuildOutcome] | None = None,
) -> BuildOutcome:
    """Build ``build`` unless an image with its content hash is already tagged; never pull."""
    started = time.monotonic()
    text, bases = rewrite_dockerfile(build, image_map)
    base_ids = {ref: _base_image_id(client, build, ref, line) for ref, line in bases}
    files = context_files(build.context)
    dockerfile_name = _dockerfile_name(build)
    digest = _content_hash(build, text, dockerfile_name, files, base_ids)
    if done is not None and digest in done:
        return done[digest]
    tag = f"{build.repository}:{digest[:12]}"
    existing = _guard_engine(lambda: local_image(client, tag), f"looking up {tag}")
    if existing is not None and not force and existing.labels.get(HASH_LABEL) == digest:
        emit(f"{build.service}: image cached {tag}")
        _log().info("build.cached", service=build.service, tag=tag, image_id=existing.id)
        outcome = BuildOutcome(service=build.service, tag=tag, image_id=str(existing.id),
                               cached=True, seconds=time.monotonic() - started,
                               content_hash=digest)
    else:
        emit(f"{build.service}: building {tag} from {build.context}")
        labels = {IMAGE_LABEL: "1", HASH_LABEL: digest, NAME_LABEL: build.repository[6:],
                  BUILD_KEY_LABEL: build.key, BUILD_CONTEXT_LABEL: str(build.context)}
        entries: dict[str, bytes | Path] = {rel: build.context / rel for rel in files}
        entries[dockerfile_name] = text.encode()
        options: dict[str, Any] = {"dockerfile": dockerfile_name}
        if build.args:
            options["buildargs"] = dict(build.args)
        if build.target:
            options["target"] = build.target
        hint = (f"the build of service '{build.service}' failed in its Dockerfile "
                f"({build.dockerfile}); the lines above are the engine's build log")
        def build_log(line: str) -> None:  # engine lines stay out of the progress display
            _log().debug("build.log", service=build.service, line=line)

        with make_context(entries) as context:
            image_id = _guard_engine(
                lambda: build_from_context(client, tag=tag, context=context, labels=labels,
                                           nocache=force, emit=build_log,
                                           failure_hint=hint,
                                           options=options),
                f"building {tag}")
        seconds = time.monotonic() - started
        emit(f"{build.service}: built {tag} in {seconds:.1f} s")
        _log().info("build.built", service=build.service, tag=tag, image_id=image_id,
                    seconds=round(seconds, 2))
        _drop_replaced(client, build.key, keep=tag)
        outcome = BuildOutcome(service=build.service, tag=tag, image_id=image_id, cached=False,
                               seconds=seconds, content_hash=digest)
    if done is not None:
        done[digest] = outcome
    return outcome


def rewrite_dockerfile(
    build: UserBuild, image_map: dict[str, str]
) -> tuple[str, list[tuple[str, int]]]:
    """The Dockerfile with ``--image-map`` applied to its ``FROM`` lines, and the base images.

    Returns ``(text, [(image, line)])``: each external base image (not ``scratch``, not
    an earlier stage) after ``ARG`` substitution and mapping, with its 1-based line.
    """
    lines = build.dockerfile.read_text(encoding="utf-8", errors="replace").splitlines(True)
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[tuple[str, int]] = []
    seen_from = False
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and not seen_from and len(words) > 1:
            name, _, value = words[1].partition("=")
            defaults[name] = value.strip("\"'")
        if instruction != "FROM":
            continue
        seen_from = True
        rest = [w for w in words[1:] if not w.startswith("--")]
        if not rest:
            continue
        written = rest[0]
        ref = _substitute(written, {**defaults, **build.args})
        earlier_stage = ref.lower() in stages
        if len(rest) >= 3 and rest[1].upper() == "AS":
            stages.add(rest[2].lower())
        if earlier_stage or ref == "scratch":
            continue
        mapped = image_map.get(ref) or image_map.get(with_default_tag(ref)) or ref
        if mapped != ref:  # only a mapped base changes the text the engine builds
            lines[number - 1] = line.replace(written, mapped, 1)
        bases.append((mapped, number))
    return "".join(lines), bases


def _substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return values.get(name) or (match.group(2) or "")

    return _VAR.sub(one, text)


def _base_image_id(client: Any, build: UserBuild, ref: str, line: int) -> str:
    image = _guard_engine(lambda: local_image(client, ref), f"looking up base image {ref!r}")
    if image is None:
        raise ScenarioError(
            f"service '{build.service}' is built FROM {ref!r}, which is not a local image "
            "(clnrm never pulls)", file=str(build.dockerfile), line=line,
            hint=(f"base it on a local image (e.g. FROM {BUSYBOX_IMAGE}, `docker images` lists "
                  f"them), `docker load -i FILE.tar` it, or map it: "
                  f"clnrm run --image-map {ref}={BUSYBOX_IMAGE} ..."))
    return str(image.id)


def context_files(context: Path) -> dict[str, str]:
    """``relative path -> "sha256:mode"`` for every regular file of the context to send.

    ``.dockerignore`` is honoured simply: one glob per line (``fnmatch``; ``**/`` also
    matches at the top), ``!`` re-includes, the last matching line wins, and a pattern
    that matches a folder excludes everything under it. Symlinks to files are followed.
    """
    patterns = _ignore_patterns(context / ".dockerignore")
    found: dict[str, str] = {}
    for folder, dirs, names in os.walk(context):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            rel = path.relative_to(context).as_posix()
            if _ignored(rel, patterns) or not path.is_file():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[rel] = f"{digest}:{path.stat().st_mode & 0o777:o}"
    return found


def _ignore_patterns(path: Path) -> list[tuple[bool, str]]:
    if not path.is_file():
        return []
    patterns = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().lstrip("/").rstrip("/")
        pattern = os.path.normpath(pattern).replace(os.sep, "/") if pattern else pattern
        if pattern:
            patterns.append((negate, pattern))
    return patterns


def _ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, pattern in patterns:
        options = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(p, o) for p in prefixes for o in options):
            ignored = not negate
    return ignored


def _dockerfile_name(build: UserBuild) -> str:
    """The Dockerfile's path inside the context tar (a fixed name when it lies outside)."""
    try:
        return build.dockerfile.relative_to(build.context).as_posix()
    except ValueError:
        return _OUTSIDE_DOCKERFILE


def _content_hash(build: UserBuild, dockerfile: str, dockerfile_name: str,
                  files: dict[str, str], bases: dict[str, str]) -> str:
    document = {"schema": _SCHEMA, "service": build.service, "dockerfile": dockerfile,
                "dockerfile_name": dockerfile_name, "files": files, "args": build.args,
                "target": build.target, "bases": bases}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _drop_replaced(client: Any, key: str, *, keep: str) -> None:
    """Remove older builds of the same service and context that no container uses."""
    import docker.errors

    try:
        old = client.images.list(filters={"label": f"{BUILD_KEY_LABEL}={key}"})
    except (docker.errors.DockerException, OSError):
        return
    for image in old:
        if keep in image.tags:
            continue
        try:
            client.images.remove(image.id, noprune=False)
        except docker.errors.APIError:
            continue  # in use by a container (another run): it stays until then


def user_built_images(client: Any) -> list[Any]:
    """Images clnrm built from users' contexts (for ``clnrm images list``)."""
    return list(client.images.list(filters={"label": BUILD_KEY_LABEL}))


def _log() -> Any:
    import structlog

    return structlog.get_logger("clnrm.images")


__all__ = [
    "BUILD_CONTEXT_LABEL",
    "BUILD_KEY_LABEL",
    "BuildOutcome",
    "UserBuild",
    "build_for_run",
    "build_service_images",
    "build_user_image",
    "context_files",
    "needs_builds",
    "resolve_build",
    "rewrite_dockerfile",
    "user_built_images",
]
