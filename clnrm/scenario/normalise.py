"""Fold a :class:`RawTestFile` into a :class:`Scenario` and check cross-field rules.

Single-field rules live on the models; the rules here need the whole file
(a step's ``service`` must be declared somewhere, a name may come from one of
three tables).  Each problem keeps the TOML key path it is about, so the
loader can point at the right line.
"""

from __future__ import annotations

from typing import Any

from clnrm.scenario.diagnostics import Problem
from clnrm.scenario.expect import Expect
from clnrm.scenario.locate import KeyPath
from clnrm.scenario.model import (
    IMAGE_OPTIONAL_PLUGINS,
    OtelConfig,
    Scenario,
    ServiceConfig,
)
from clnrm.scenario.mounts import host_mount_problems
from clnrm.scenario.raw import RawTestFile

_NAME_HINT = 'add [meta] with name = "my_test" (or [test.metadata] with name = "my_test")'


def normalise(raw: RawTestFile, *, vars_: dict[str, Any]) -> tuple[Scenario | None, list[Problem]]:
    """Return the scenario, or ``None`` plus every problem found (all of them, not just one)."""
    problems: list[Problem] = []
    if raw.meta is None and raw.test is None and not raw.steps and not raw.scenario:
        return None, [
            Problem(
                "this is not a clnrm test: it has no [meta] or [test.metadata] and no "
                "[[steps]] or [[scenario]]",
                None,
                "a test needs a name ([meta] name = ...) and something to run ([[steps]])",
            )
        ]
    name = _resolve_name(raw, problems)
    services, origin = _merge_services(raw, problems)
    _check_steps_exist(raw, problems)
    _check_references(raw, services, origin, problems)
    _check_services(services, origin, problems)
    problems.extend(host_mount_problems(services, origin, allowed=raw.allow_host_mounts))
    _check_scenarios(raw, problems)
    _check_faults(raw, services, problems)
    _check_performance(raw, services, problems)
    if problems or name is None:
        return None, problems
    meta, metadata, test = raw.meta, raw.test.metadata if raw.test else None, raw.test
    scenario = Scenario(
        name=name,
        description=_first(
            meta and meta.description, metadata and metadata.description, test and test.description
        ),
        timeout=_first(meta and meta.timeout, metadata and metadata.timeout, test and test.timeout),
        version=_first(meta and meta.version, metadata and metadata.version),
        author=_first(meta and meta.author, metadata and metadata.author),
        tags=(meta.tags if meta and meta.tags else (metadata.tags if metadata else [])),
        services=services,
        steps=raw.steps,
        scenarios=raw.scenario,
        vars=vars_,
        matrix=raw.matrix,
        determinism=raw.determinism,
        otel=_otel(raw),
        report=raw.report,
        limits=raw.limits,
        expect=raw.expect if raw.expect is not None else Expect(),
        otel_validation=raw.otel_validation.model_dump() if raw.otel_validation else None,
        assertions=raw.assertions
        if raw.assertions is not None
        else (test.assertions if test else None),
        layers=raw.layers,
        orchestration=raw.orchestration,
        chaos=raw.chaos,
        performance=raw.performance,
        self_healing=raw.self_healing,
        intelligence=raw.intelligence,
    )
    return scenario, problems


def _first(*values: Any) -> Any:
    return next((value for value in values if value not in (None, "")), None)


def _resolve_name(raw: RawTestFile, problems: list[Problem]) -> str | None:
    """``[meta]`` wins, then ``[test.metadata]``, then ``[test]`` (as upstream, plus the last)."""
    candidates: list[tuple[str | None, KeyPath]] = []
    if raw.meta is not None:
        candidates.append((raw.meta.name, ("meta", "name")))
    if raw.test is not None and raw.test.metadata is not None:
        candidates.append((raw.test.metadata.name, ("test", "metadata", "name")))
    if raw.test is not None:
        candidates.append((raw.test.name, ("test", "name")))
    for value, path in candidates:
        if value is None:
            continue
        if not value.strip():
            problems.append(Problem("test name must not be blank", path, _NAME_HINT))
            return None
        return value
    where = candidates[0][1][:-1] if candidates else None
    problems.append(Problem("the test has no name", where, _NAME_HINT))
    return None


def _merge_services(
    raw: RawTestFile, problems: list[Problem]
) -> tuple[dict[str, ServiceConfig], dict[str, KeyPath]]:
    """``[services.x]`` and ``[service.x]`` are one namespace; a name in both is an error."""
    services: dict[str, ServiceConfig] = {}
    origin: dict[str, KeyPath] = {}
    for table, declared in (("services", raw.services), ("service", raw.service)):
        for name, config in declared.items():
            if name in services:
                problems.append(
                    Problem(
                        f"service '{name}' is declared in both [services] and [service]",
                        (table, name),
                        f"keep one of [services.{name}] and [service.{name}]",
                    )
                )
                continue
            services[name] = config
            origin[name] = (table, name)
    return services, origin


def _check_steps_exist(raw: RawTestFile, problems: list[Problem]) -> None:
    """A file needs steps to run, or expectations to judge a trace export with."""
    if not raw.steps and not raw.scenario and (raw.expect is None or raw.expect.is_empty):
        problems.append(
            Problem(
                "the test has nothing to run and nothing to judge: no [[steps]], no "
                "[[scenario]] and no [[expect.*]] tables",
                None,
                'add [[steps]] with name = "..." and command = ["..."]; a file with only '
                "[[expect.*]] tables judges a trace export (clnrm run FILE --traces EXPORT)",
            )
        )


def _declared_hint(services: dict[str, ServiceConfig]) -> str:
    if not services:
        return (
            'no services are declared; add [services.NAME] with image = "..." or drop the reference'
        )
    return "declared services: " + ", ".join(sorted(services))


def _check_references(
    raw: RawTestFile,
    services: dict[str, ServiceConfig],
    origin: dict[str, KeyPath],
    problems: list[Problem],
) -> None:
    def check(service: str | None, path: KeyPath, who: str) -> None:
        if service is not None and service not in services:
            problems.append(
                Problem(
                    f"{who} uses service '{service}', which is not declared",
                    path,
                    _declared_hint(services),
                )
            )

    for index, step in enumerate(raw.steps):
        check(step.service, ("steps", index, "service"), f"step '{step.name}'")
    for index, block in enumerate(raw.scenario):
        check(block.service, ("scenario", index, "service"), f"scenario '{block.name}'")
        for sub, step in enumerate(block.steps):
            check(step.service, ("scenario", index, "steps", sub, "service"), f"step '{step.name}'")
    for name, config in services.items():
        for position, dependency in enumerate(config.depends_on):
            path = (*origin[name], "depends_on", position)
            if dependency == name:
                problems.append(Problem(f"service '{name}' depends on itself", path))
            else:
                check(dependency, path, f"service '{name}'")


def _check_services(
    services: dict[str, ServiceConfig], origin: dict[str, KeyPath], problems: list[Problem]
) -> None:
    for name, config in services.items():
        if config.image_required and not config.image:
            hint = (
                f'add image = "..." under [{".".join(map(str, origin[name]))}], or use a plugin '
                f"that needs none ({', '.join(sorted(IMAGE_OPTIONAL_PLUGINS))})"
            )
            if config.type and config.type != config.plugin:
                hint += (
                    "; note 'type' is informational, the plugin is chosen by "
                    f'plugin = "{config.type}"'
                )
            problems.append(
                Problem(
                    f"service '{name}' (plugin '{config.plugin}') needs an image",
                    origin[name],
                    hint,
                )
            )


def _check_performance(
    raw: RawTestFile, services: dict[str, ServiceConfig], problems: list[Problem]
) -> None:
    """The load of ``[performance.load]`` goes to a declared service, on a declared port."""
    load = raw.performance.load if raw.performance is not None else None
    if load is None:
        return
    if load.service not in services:
        problems.append(Problem(
            f"the load goes to service '{load.service}', which is not declared",
            ("performance", "load", "service"), _declared_hint(services)))
    elif services[load.service].ports and load.port not in services[load.service].ports:
        problems.append(Problem(
            f"port {load.port} is not a port of '{load.service}'",
            ("performance", "load", "port"),
            f"'{load.service}' declares ports {list(services[load.service].ports)}"))


def _check_scenarios(raw: RawTestFile, problems: list[Problem]) -> None:
    for index, block in enumerate(raw.scenario):
        if block.run is None and not block.steps:
            problems.append(
                Problem(
                    f"scenario '{block.name}' has nothing to run",
                    ("scenario", index),
                    'give it run = "shell command" (with service = "...") '
                    "or nested [[scenario.steps]]",
                )
            )


def _check_faults(
    raw: RawTestFile, services: dict[str, ServiceConfig], problems: list[Problem]
) -> None:
    if raw.chaos is None:
        return
    for index, fault in enumerate(raw.chaos.faults):
        if fault.target is not None and fault.target not in services:
            problems.append(
                Problem(
                    f"fault '{fault.name or fault.type}' targets service '{fault.target}', "
                    "which is not declared",
                    ("chaos", "faults", index, "target"),
                    _declared_hint(services),
                )
            )
    if raw.chaos.faults:
        from clnrm.chaos.catalog import check_faults

        ports = {name: list(cfg.ports) for name, cfg in services.items()}
        problems.extend(check_faults(raw.chaos, ports))
    for index, probe in enumerate(raw.chaos.probes):
        for kind in ("http", "tcp"):
            target = getattr(probe, kind)
            if target is not None and target.service not in services:
                problems.append(Problem(
                    f"probe '{probe.name}' checks service '{target.service}', which is not "
                    "declared", ("chaos", "probes", index, kind, "service"),
                    _declared_hint(services)))
        if probe.service is not None and probe.service not in services:
            problems.append(Problem(
                f"probe '{probe.name}' runs in service '{probe.service}', which is not "
                "declared", ("chaos", "probes", index, "service"), _declared_hint(services)))


def _otel(raw: RawTestFile) -> OtelConfig | None:
    """Fold upstream's top-level ``[otel_headers]``/``[otel_propagators]`` into ``[otel]``."""
    if raw.otel is None and not raw.otel_headers and raw.otel_propagators is None:
        return None
    otel = raw.otel.model_copy() if raw.otel is not None else OtelConfig()
    if raw.otel_headers:
        otel.headers = {**raw.otel_headers, **otel.headers}
    if raw.otel_propagators is not None and otel.propagators is None:
        otel.propagators = raw.otel_propagators
    return otel
