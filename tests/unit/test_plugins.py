"""Service plugins come from entry points and all honour the same interface."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clnrm import plugins
from clnrm.errors import PluginError
from clnrm.plugins.base import ServiceSpec, ServiceType, SpecContext
from clnrm.scenario.model import ServiceConfig
from tests.fixtures.plugins import echo_server

CTX = SpecContext(default_image="clnrm/busybox:latest", image_map={"alpine:latest": "x:1"})


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    plugins.service_types.cache_clear()
    yield
    plugins.service_types.cache_clear()


def test_builtins_are_found_through_entry_points() -> None:
    pm = plugins.plugin_manager()
    pm.check_pending()
    names = {name for name, _ in pm.list_name_plugin()}
    assert {"generic_container", "network_service", "local_process"} <= names
    assert {"generic_container", "network_service", "local_process"} <= set(
        plugins.service_types())


def test_unknown_plugin_lists_installed_ones() -> None:
    with pytest.raises(PluginError) as err:
        plugins.get_service_type("surrealdb")
    assert "unknown service plugin 'surrealdb'" in str(err.value)
    assert "generic_container" in str(err.value)


def test_third_party_plugin_registers_and_clashes_are_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = plugins.plugin_manager

    def with_extra() -> object:
        pm = real()
        pm.register(echo_server, name="echo_server_plugin")
        return pm

    monkeypatch.setattr(plugins, "plugin_manager", with_extra)
    spec = plugins.get_service_type("echo_server").to_spec("e", ServiceConfig(), CTX)
    assert spec.readiness == "tcp" and spec.ports == (7,)

    class Clash:  # a second plugin object claiming the same service-type name
        clnrm_service_types = staticmethod(echo_server.clnrm_service_types)

    def clashing() -> object:
        pm = with_extra()
        pm.register(Clash(), name="echo_server_again")
        return pm

    monkeypatch.setattr(plugins, "plugin_manager", clashing)
    plugins.service_types.cache_clear()
    with pytest.raises(PluginError, match="provided by both"):
        plugins.service_types()


@pytest.mark.parametrize("name", ["generic_container", "network_service", "local_process"])
def test_every_builtin_complies_with_the_interface(name: str) -> None:
    stype = plugins.get_service_type(name)
    assert isinstance(stype, ServiceType) and stype.name == name and stype.description
    cfg = ServiceConfig(image="alpine:latest", command=["serve"], ports=[80])
    stype.check("svc", cfg)
    spec = stype.to_spec("svc", cfg, CTX)
    assert isinstance(spec, ServiceSpec)
    assert spec.name == "svc" and spec.command == ["serve"]
    assert spec.image == "x:1", "image map must apply"


def test_generic_container_needs_an_image() -> None:
    with pytest.raises(PluginError, match="needs an 'image'"):
        plugins.get_service_type("generic_container").check("svc", ServiceConfig())


def test_network_service_needs_a_port_or_health_check() -> None:
    with pytest.raises(PluginError, match="needs 'ports'"):
        plugins.get_service_type("network_service").check(
            "svc", ServiceConfig(command=["httpd"]))


def test_local_process_needs_a_command() -> None:
    with pytest.raises(PluginError, match="needs a 'command'"):
        plugins.get_service_type("local_process").check("svc", ServiceConfig())


def test_generic_container_keeps_shell_images_alive_only_without_command() -> None:
    gc = plugins.get_service_type("generic_container")
    assert gc.to_spec("a", ServiceConfig(image="i"), CTX).keep_alive is True
    assert gc.to_spec("a", ServiceConfig(image="i", command=["x"]), CTX).keep_alive is False
