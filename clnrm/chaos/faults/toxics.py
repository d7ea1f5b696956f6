"""Network and application faults that act through the chaos proxy (Toxiproxy's toxics).

Each fault is one toxic on the proxy in front of one port of the target service
(``port``, or the service's only declared port).  The engine puts that port behind
the proxy when the target starts (``proxied = True``), so a toxic added later also
reaches connections opened before it: a database pool, a keep-alive HTTP client.

Common parameters:

- ``stream``: ``downstream`` (server to client, the default: what clients receive)
  or ``upstream`` (client to server);
- ``toxicity``: probability that the toxic applies to a given connection, drawn once
  per connection from the run's seed (Toxiproxy's meaning);
- ``from``: services whose connections are affected (their addresses on the test
  network, read at injection); empty means every client.

The toxic lives in the proxy process, which dies with the run, so nothing needs undoing
after a SIGKILL beyond that process (journalled by the proxy manager).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import ConfigDict, Field, model_validator

from clnrm.chaos.base import Category, Fault, FaultConfig
from clnrm.errors import ChaosError

if TYPE_CHECKING:

    from clnrm.chaos.context import ChaosContext
    from clnrm.chaos.proxy import ProxyControl

Stream = Literal["upstream", "downstream"]


class ProxiedConfig(FaultConfig):
    """Parameters every proxied fault has."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    port: int | None = Field(default=None, ge=1, le=65535,
                             description="target port to disturb (default: its only one)")
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0,
                            description="probability per connection that the fault applies")
    from_: list[str] = Field(default_factory=list, alias="from",
                             description="services whose connections are affected "
                                         "(default: all clients)")


PC = TypeVar("PC", bound=ProxiedConfig)


class StreamConfig(ProxiedConfig):
    stream: Stream = Field(default="downstream",
                           description="downstream: server to client; upstream: client to "
                                       "server")


class _ToxicFault(Fault[PC]):
    """One toxic on the target's proxied port; subclasses say which and with what."""

    category: ClassVar[Category] = "network"
    proxied: ClassVar[bool] = True
    toxic: ClassVar[str]
    """The proxy's toxic type (:data:`clnrm.chaos.proxy_toxics.KINDS`)."""

    def __init__(self, config: PC, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self._name: str | None = None
        self._control: ProxyControl | None = None

    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes, in the proxy's (Toxiproxy's) names and units."""
        return {}

    def effect(self) -> str:
        """What the toxic does, for the timeline ("200±50 ms")."""
        return ""

    def inject(self) -> str:
        cfg = self.config
        if self.ctx.proxies is None:
            raise ChaosError("no chaos proxy in this test", fault=self.type, target=self.target,
                             hint="proxied faults are set up by the chaos engine, which puts "
                                  "the target's port behind the proxy when it starts")
        control = self.ctx.proxies.control(self.target, cfg.port)
        sources = sorted({ip for service in cfg.from_ for ip in self.ctx.ips(service)})
        if cfg.from_ and not sources:
            raise ChaosError(f"none of {', '.join(cfg.from_)} has an address (running?)",
                             fault=self.type, target=self.target)
        stream = getattr(cfg, "stream", "downstream")
        # the name seeds the toxic's random draws in the proxy: derived from the schedule,
        # not random, so one seed replays the same decisions
        taken = {t["name"] for t in control.toxics()}
        name = next(f"{self.type}-{self.target}-{n}" for n in range(1, len(taken) + 2)
                    if f"{self.type}-{self.target}-{n}" not in taken)
        self._control, self._name = control, name
        toxic = control.add_toxic(name, self.toxic, stream=stream, toxicity=cfg.toxicity,
                                  sources=sources, **self.attributes())
        port = getattr(control, "port", None) or cfg.port or "?"
        who = f"from {', '.join(cfg.from_)}" if cfg.from_ else "all clients"
        share = f", {cfg.toxicity:.0%} of connections" if cfg.toxicity < 1 else ""
        where = f"{toxic['stream']}, " if self._shows_stream else ""
        effect = self.effect()
        return f"{self.type}{' ' + effect if effect else ''} on {self.target}:{port} " \
               f"({where}{who}{share})"

    _shows_stream: ClassVar[bool] = True

    def rollback(self) -> str:
        if self._control is None or self._name is None:
            return f"{self.type}: nothing was added"
        try:
            self._control.remove_toxic(self._name)
        except ChaosError as exc:
            if "no toxic named" not in str(exc):
                raise
        return f"removed {self.type} from {self.target}"


# -- the catalog -------------------------------------------------------------------------


class LatencyConfig(StreamConfig):
    latency_ms: int = Field(ge=0, description="delay added to each chunk of data")
    jitter_ms: int = Field(default=0, ge=0, description="± random part of the delay "
                                                        "(uniform, per chunk)")


class Latency(_ToxicFault[LatencyConfig]):
    """Every chunk of data arrives ``latency_ms`` ± ``jitter_ms`` late (per chunk, from when
    it reached the proxy, so pipelined data is not delayed cumulatively)."""

    type = "latency"
    toxic = "latency"
    summary = "delay the data of the target's connections (Toxiproxy latency)"
    Config = LatencyConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"latency": cfg.latency_ms, "jitter": cfg.jitter_ms}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.latency_ms}±{cfg.jitter_ms} ms" if cfg.jitter_ms else f"{cfg.latency_ms} ms"


class JitterConfig(LatencyConfig):
    latency_ms: int = Field(default=0, ge=0, description="fixed delay under the jitter")
    jitter_ms: int = Field(gt=0, description="± random delay per chunk (uniform)")


class Jitter(Latency):
    """Variable delay: ``latency_ms`` (default 0) ± ``jitter_ms``; a negative draw is no
    delay.  Order is kept (TCP never reorders), so late chunks hold back later ones."""

    type = "jitter"
    summary = "delay data by a random amount per chunk (latency toxic with jitter)"
    Config = JitterConfig  # type: ignore[assignment]  # mypy took Latency.Config's value as its type


class LossConfig(StreamConfig):
    fraction: float = Field(gt=0.0, le=1.0, description="share of TCP segments lost")
    rto_ms: int = Field(default=200, ge=1, description="first retransmission timeout "
                                                       "(Linux's minimum: 200 ms)")


class Loss(_ToxicFault[LossConfig]):
    """Packet loss as an application sees it over TCP.

    TCP never hands the application missing or corrupt bytes: it retransmits, and
    everything behind a lost segment waits.  So a lost segment shows up as a stall of
    one retransmission timeout (doubled for each time the retransmission is lost again),
    holding back the data after it.  Each chunk counts as ``ceil(bytes / 1448)`` segments.
    ``tc netem loss`` would be the kernel version; this machine kind has no netem.
    """

    type = "loss"
    toxic = "loss"
    summary = "packet loss as TCP shows it: stalls of one retransmission timeout"
    Config = LossConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"probability": cfg.fraction, "rto": cfg.rto_ms}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.fraction:.1%} (RTO {cfg.rto_ms} ms)"


class BandwidthConfig(StreamConfig):
    rate_kb_s: int = Field(gt=0, description="kilobytes (1000 bytes) per second")


class Bandwidth(_ToxicFault[BandwidthConfig]):
    """Each affected connection gets at most ``rate_kb_s`` KB/s on the stream."""

    type = "bandwidth"
    toxic = "bandwidth"
    summary = "limit the throughput of each connection (Toxiproxy bandwidth)"
    Config = BandwidthConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"rate": cfg.rate_kb_s}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.rate_kb_s} KB/s"


class SlowCloseConfig(StreamConfig):
    delay_ms: int = Field(gt=0, description="how late a close reaches the other side")


class SlowClose(_ToxicFault[SlowCloseConfig]):
    """A close (FIN) on the stream reaches the other side ``delay_ms`` late."""

    type = "slow_close"
    toxic = "slow_close"
    summary = "delay the close of connections (Toxiproxy slow_close)"
    Config = SlowCloseConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"delay": cfg.delay_ms}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.delay_ms} ms"


class ResetPeerConfig(StreamConfig):
    timeout_ms: int = Field(default=0, ge=0, description="from the first data to the reset")


class ResetPeer(_ToxicFault[ResetPeerConfig]):
    """Connections are reset (TCP RST: "connection reset by peer") ``timeout_ms`` after
    their first data on the stream once the fault is on; that data is lost."""

    type = "reset_peer"
    toxic = "reset_peer"
    summary = "reset connections (RST) on their next data (Toxiproxy reset_peer)"
    Config = ResetPeerConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"timeout": cfg.timeout_ms}

    def effect(self) -> str:
        cfg = self.config
        return f"after {cfg.timeout_ms} ms" if cfg.timeout_ms else ""


class TimeoutConfig(StreamConfig):
    timeout_ms: int = Field(default=0, ge=0, description="close the connection after this; "
                                                         "0 = never (a black hole)")


class Timeout(_ToxicFault[TimeoutConfig]):
    """Data on the stream is dropped; the connection is closed after ``timeout_ms``, or,
    with 0, held open forever: the peer hangs until its own timeout."""

    type = "timeout"
    toxic = "timeout"
    summary = "drop data and hang or close connections (Toxiproxy timeout)"
    Config = TimeoutConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"timeout": cfg.timeout_ms}

    def effect(self) -> str:
        cfg = self.config
        return f"closing after {cfg.timeout_ms} ms" if cfg.timeout_ms else "(black hole)"


class SlicerConfig(StreamConfig):
    average_size: int = Field(gt=0, description="bytes per slice")
    size_variation: int = Field(default=0, ge=0, description="± bytes per slice")
    delay_us: int = Field(default=0, ge=0, description="microseconds between slices")

    @model_validator(mode="after")
    def _variation_below_average(self) -> SlicerConfig:
        if self.size_variation >= self.average_size:
            raise ValueError("size_variation must be smaller than average_size")
        return self


class Slicer(_ToxicFault[SlicerConfig]):
    """Data is cut into small pieces sent ``delay_us`` apart (exercises parsers that
    assume one read is one message)."""

    type = "slicer"
    toxic = "slicer"
    summary = "cut data into small delayed pieces (Toxiproxy slicer)"
    Config = SlicerConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"average_size": cfg.average_size, "size_variation": cfg.size_variation,
                "delay": cfg.delay_us}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.average_size}±{cfg.size_variation} B every {cfg.delay_us} µs"


class LimitDataConfig(StreamConfig):
    bytes: int = Field(ge=0, description="bytes a connection may carry on the stream")


class LimitData(_ToxicFault[LimitDataConfig]):
    """Each connection is closed once ``bytes`` bytes have passed on the stream (counted
    from when the fault reached it)."""

    type = "limit_data"
    toxic = "limit_data"
    summary = "close connections after some bytes (Toxiproxy limit_data)"
    Config = LimitDataConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"bytes": cfg.bytes}

    def effect(self) -> str:
        cfg = self.config
        return f"after {cfg.bytes} B"


class HttpErrorConfig(ProxiedConfig):
    fraction: float = Field(default=1.0, gt=0.0, le=1.0,
                            description="share of requests answered with the error")
    status: int = Field(default=503, ge=400, le=599, description="status code answered")
    body: str = Field(default="", description="response body (default: a one-line note)")


class HttpError(_ToxicFault[HttpErrorConfig]):
    """HTTP/1.x requests to the target are answered by the proxy with ``status``, a
    ``fraction`` of them (seeded draw per request), instead of being forwarded; the others
    reach the server intact.  Request boundaries are parsed (Content-Length, chunked), so
    keep-alive and pipelined connections work; the target never sees failed requests."""

    type = "http_error"
    toxic = "http_error"
    category: ClassVar[Category] = "application"
    summary = "answer some HTTP requests with an error status instead of forwarding them"
    Config = HttpErrorConfig
    _shows_stream = False

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"probability": cfg.fraction, "status": cfg.status, "body": cfg.body}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.status} for {cfg.fraction:.0%} of requests"


class CorruptConfig(StreamConfig):
    fraction: float = Field(gt=0.0, le=1.0, description="share of bytes with one bit flipped")


class Corrupt(_ToxicFault[CorruptConfig]):
    """A ``fraction`` of the bytes on the stream get one random bit flipped (seeded): data
    corruption TCP's checksum would have missed, or a buggy middlebox."""

    type = "corrupt"
    toxic = "corrupt"
    category: ClassVar[Category] = "application"
    summary = "flip bits in a fraction of the bytes of the target's connections"
    Config = CorruptConfig

    def attributes(self) -> dict[str, Any]:
        cfg = self.config
        return {"probability": cfg.fraction}

    def effect(self) -> str:
        cfg = self.config
        return f"{cfg.fraction:.2%} of bytes"


class Down(_ToxicFault[ProxiedConfig]):
    """The port is down: open connections are reset, new ones refused (RST to the SYN,
    as when nothing listens; with ``from`` or ``toxicity`` < 1 the affected ones are
    accepted and reset at once instead).  The container itself keeps running."""

    type = "down"
    toxic = "down"
    summary = "the target's port refuses new connections and drops open ones"
    Config = ProxiedConfig
    _shows_stream = False


FAULTS: list[type[Fault[Any]]] = [Latency, Jitter, Loss, Bandwidth, SlowClose, ResetPeer, Timeout,
                             Slicer, LimitData, HttpError, Corrupt, Down]
