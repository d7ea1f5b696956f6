"""Per-call cost of an agent behind a Ray actor against calling the same agent directly.

Both sides call ``AgentActor.propose`` with the same real task (a scenario's
TOML travels with it), so the difference is exactly what the swarm pays per
negotiation message for running agents as actors: serialisation, the local
scheduler and two process hops.  The direct call runs in this process on an
identical ``AgentActor``.  Embedded Ray, two CPUs, as ``clnrm swarm run``.

The target is about what matters: an actor round trip must stay under 5 ms,
so a swarm run's dozens of messages cost well under a second next to
scenario runs that take seconds each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_ACTOR_US = 5000.0
# The repository first: run as a script, this folder is sys.path[0] and its memory.py
# (the memory bench) would shadow the memory package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCENARIO = (Path(__file__).resolve().parents[1] / "scenarios" / "demo" / "demo.clnrm.toml")


def per_call_us(call: object, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()  # type: ignore[operator]
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="round trips per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import ray
    from clnrm.agents.base import Layer, Task
    from clnrm.memory import Agent
    from clnrm.swarm.actors import AgentActor, AgentSpec
    from clnrm.swarm.session import ray_session

    task = Task(id="bench/demo/chaos", run_id="bench", layer=Layer.chaos, scenario="demo",
                source=str(SCENARIO), text=SCENARIO.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as memory, ray_session(None) as _:
        spec = AgentSpec(agent=Agent.chaos, memory=memory, run_id="bench")
        local = AgentActor(spec)
        actor = ray.remote(AgentActor).options(num_cpus=0).remote(spec)  # type: ignore[attr-defined]
        ray.get(actor.info.remote())
        batch = [task]
        direct = lambda: local.propose(batch)  # noqa: E731
        remote = lambda: ray.get(actor.propose.remote(batch))  # noqa: E731
        assert direct() == remote(), "the actor must answer exactly what the agent answers"
        per_call_us(direct, 100), per_call_us(remote, 100)  # warm both paths
        direct_us, actor_us = [], []
        for i in range(args.rounds):
            direct_us.append(per_call_us(direct, args.calls))
            actor_us.append(per_call_us(remote, args.calls))
            print(f"round {i + 1}: direct {direct_us[-1]:.1f} us, actor {actor_us[-1]:.1f} us",
                  file=sys.stderr)
        ray_version = ray.__version__
        ray.kill(actor)
        local.close()  # before the store's directory goes away
    d, a = statistics.median(direct_us), statistics.median(actor_us)
    ratio = a / d
    print(f"direct call {d:.1f} us, actor round trip {a:.1f} us, ratio {ratio:.1f}x, "
          f"overhead {a - d:.1f} us per call (target actor <= {TARGET_ACTOR_US:.0f} us)")
    print(json.dumps({"bench": "actor_overhead", "calls": args.calls, "rounds": args.rounds,
                      "direct_us": round(d, 2), "actor_us": round(a, 2),
                      "ratio_vs_direct_call": round(ratio, 2),
                      "overhead_us": round(a - d, 2), "ray": ray_version,
                      "target_actor_us": TARGET_ACTOR_US, "met": a <= TARGET_ACTOR_US}))


if __name__ == "__main__":
    main()
