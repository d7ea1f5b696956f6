"""Container stats sampled from the real engine while containers work, pause and vanish."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clnrm.labels import LABEL_OWNER, LABEL_RUN, owner_label
from clnrm.perf.sampler import ContainerStatsSampler
from tests.conftest import clnrm_resources

pytestmark = pytest.mark.usefixtures("local_images")

IMAGE = "clnrm/busybox:latest"
BUSY = ["sh", "-c", "while :; do :; done"]
IDLE = ["sleep", "600"]

Start = Callable[[list[str]], str]


@pytest.fixture
def start(docker_client: Any) -> Iterator[Start]:
    """Starts labelled containers without a network; removes them and checks for leftovers."""
    api = docker_client.api
    run_id = f"perf-{secrets.token_hex(4)}"
    labels = {LABEL_RUN: run_id, LABEL_OWNER: owner_label()}
    created: list[str] = []

    def run(command: list[str]) -> str:
        cid = api.create_container(IMAGE, command=command, labels=labels,
                                   host_config=api.create_host_config(network_mode="none"))["Id"]
        created.append(cid)
        api.start(cid)
        return str(cid)

    yield run
    for cid in created:
        try:
            api.remove_container(cid, force=True)
        except Exception:  # already removed by the test
            pass
    leftovers = clnrm_resources(docker_client, run_id)
    assert not any(leftovers.values()), f"resources leaked: {leftovers}"


def sampler_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("clnrm-stats-")]


def test_a_busy_container_shows_its_cpu_and_memory(docker_client: Any, start: Start) -> None:
    busy, idle = start(BUSY), start(IDLE)
    with ContainerStatsSampler(docker_client.api, {"busy": busy, "idle": idle}) as sampler:
        time.sleep(4.5)
        stopping = time.monotonic()
    stop_s = time.monotonic() - stopping
    summary = sampler.summary()
    assert summary["busy"].cpu_pct_peak is not None and summary["busy"].cpu_pct_peak > 50, \
        summary["busy"]
    assert summary["idle"].cpu_pct_peak is not None and summary["idle"].cpu_pct_peak < 20
    for name in ("busy", "idle"):
        s = summary[name]
        assert s.samples >= 3 and not s.gone and s.error is None
        assert s.mem_bytes_peak and 0 < s.mem_bytes_peak < 100 << 20  # busybox: well under
        assert s.mem_limit_bytes and s.mem_limit_bytes > s.mem_bytes_peak
    series = [x for x in sampler.samples() if x.service == "busy"]
    gaps = [(b.time_unix_nano - a.time_unix_nano) / 1e9 for a, b in itertools.pairwise(series)]
    assert gaps and all(0.5 < g < 2.5 for g in gaps), gaps  # the engine ticks once a second
    assert stop_s < 0.5, f"stopping took {stop_s:.2f} s"
    assert sampler_threads() == []


def test_a_container_removed_mid_sampling_is_marked_gone(docker_client: Any,
                                                         start: Start) -> None:
    doomed, stays = start(IDLE), start(IDLE)
    with ContainerStatsSampler(docker_client.api, {"doomed": doomed, "stays": stays,
                                                   "never": "0" * 64}) as sampler:
        time.sleep(2.5)
        docker_client.api.remove_container(doomed, force=True)
        time.sleep(2.5)
    summary = sampler.summary()
    assert summary["doomed"].gone and summary["doomed"].samples >= 1
    assert summary["never"].gone and summary["never"].samples == 0
    assert not summary["stays"].gone and summary["stays"].samples > summary["doomed"].samples
    assert all(s.error is None for s in summary.values())
    assert sampler_threads() == []


def test_paused_and_killed_containers_do_not_stop_the_sampler(docker_client: Any,
                                                              start: Start) -> None:
    paused, killed = start(BUSY), start(IDLE)
    api = docker_client.api
    with ContainerStatsSampler(api, {"paused": paused, "killed": killed}) as sampler:
        time.sleep(2.2)
        api.pause(paused)
        api.kill(killed)
        pause_ns = time.time_ns()
        time.sleep(3.2)
        api.unpause(paused)
    rows = sampler.samples()
    during = [r for r in rows if r.service == "paused" and r.time_unix_nano > pause_ns + 1.2e9]
    assert during and all(r.cpu_pct is not None and r.cpu_pct < 5 for r in during), during
    killed_rows = [r for r in rows if r.service == "killed"]
    assert killed_rows and all(r.time_unix_nano < pause_ns + 1.2e9 for r in killed_rows)
    summary = sampler.summary()
    assert summary["paused"].error is None and summary["killed"].error is None
    assert sampler_threads() == []


def test_containers_can_be_added_while_sampling(docker_client: Any, start: Start) -> None:
    first = start(IDLE)
    with ContainerStatsSampler(docker_client.api, {"first": first}) as sampler:
        time.sleep(0.5)
        sampler.watch("later", start(BUSY))
        time.sleep(3.5)
    summary = sampler.summary()
    assert summary["later"].samples >= 2 and summary["first"].samples >= 3
    assert summary["later"].cpu_pct_peak is not None and summary["later"].cpu_pct_peak > 50
