"""A layered layout to draw the service graph as SVG.

The graph itself (who calls whom, from the spans' parent links) is
:mod:`clnrm.otel.service_graph`'s: topology checks judge the same graph without
importing the report code; its names are re-exported here for the report's users.

The layout puts callers left of callees, as Graphviz ``dot`` does: a
depth-first walk from the services nobody calls marks the calls that close a
loop; without them the graph is acyclic, each service sits in the layer of
its longest call path, and one barycentre pass orders each layer by its
callers' positions to cut crossings.  Loop-closing calls are drawn as arcs
under the boxes.  Coordinates are plain numbers so the template only prints
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from clnrm.otel.service_graph import (
    UNKNOWN_SERVICE,
    ServiceEdge,
    ServiceGraph,
    merge_graphs,
    service_graph,
)

__all__ = ["UNKNOWN_SERVICE", "EdgePath", "GraphLayout", "NodeBox", "ServiceEdge",
           "ServiceGraph", "layout", "merge_graphs", "service_graph"]

_NODE_H: Final = 34
_GAP_Y: Final = 26
_GAP_X: Final = 110
_MARGIN: Final = 24
_CHAR_W: Final = 7.3  # 12 px monospace
_LABEL_CHARS: Final = 32


@dataclass(frozen=True, slots=True)
class NodeBox:
    name: str
    label: str  # name clipped to fit the box
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class EdgePath:
    edge: ServiceEdge
    d: str  # SVG path data
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class GraphLayout:
    nodes: list[NodeBox]
    edges: list[EdgePath]
    width: float
    height: float


def layout(graph: ServiceGraph) -> GraphLayout:
    """Boxes and edge paths for ``graph``, callers left of callees."""
    layers = _layers(graph)
    width_of = {s: min(len(s), _LABEL_CHARS) * _CHAR_W + 24 for s in graph.services}
    columns = max(layers.values(), default=-1) + 1
    by_layer: list[list[str]] = [[] for _ in range(columns)]
    for service in graph.services:
        by_layer[layers[service]].append(service)
    _order_by_callers(by_layer, graph.edges)

    tallest = max((len(col) for col in by_layer), default=0)
    inner = tallest * _NODE_H + max(tallest - 1, 0) * _GAP_Y
    spans = [layers[e.source] - layers[e.target] for e in graph.edges
             if layers[e.target] < layers[e.source]]
    below = _arc_depth(max(spans)) + 10 if spans else 0  # room for loop-closing arcs
    height = 2 * _MARGIN + inner + below
    boxes: dict[str, NodeBox] = {}
    x = float(_MARGIN)
    for col in by_layer:
        col_h = len(col) * _NODE_H + max(len(col) - 1, 0) * _GAP_Y
        y = _MARGIN + (inner - col_h) / 2
        col_w = max(width_of[s] for s in col)
        for s in col:
            label = s if len(s) <= _LABEL_CHARS else s[: _LABEL_CHARS - 1] + "…"
            boxes[s] = NodeBox(s, label, x + (col_w - width_of[s]) / 2, y, width_of[s], _NODE_H)
            y += _NODE_H + _GAP_Y
        x += col_w + _GAP_X
    width = x - _GAP_X + _MARGIN if by_layer else 2 * _MARGIN
    floor = _MARGIN + inner
    paths = [_route(e, boxes[e.source], boxes[e.target], layers, floor) for e in graph.edges]
    return GraphLayout(nodes=[boxes[s] for col in by_layer for s in col], edges=paths,
                       width=round(width, 1), height=round(height, 1))


def _layers(graph: ServiceGraph) -> dict[str, int]:
    """Longest-path layer of each service once loop-closing calls are set aside."""
    callees: dict[str, list[str]] = {s: [] for s in graph.services}
    for e in graph.edges:
        callees[e.source].append(e.target)
    closing = _loop_closing(graph.services, callees)
    callers: dict[str, list[str]] = {s: [] for s in graph.services}
    for e in graph.edges:
        if (e.source, e.target) not in closing:
            callers[e.target].append(e.source)
    layer: dict[str, int] = {}
    pending = {s: len(callers[s]) for s in graph.services}
    ready = [s for s in graph.services if not pending[s]]
    while ready:  # Kahn's topological order over the acyclic rest
        service = ready.pop()
        layer[service] = max((layer[c] + 1 for c in callers[service]), default=0)
        for callee in callees[service]:
            if (service, callee) not in closing:
                pending[callee] -= 1
                if not pending[callee]:
                    ready.append(callee)
    return layer


def _loop_closing(services: list[str], callees: Mapping[str, list[str]]) -> set[tuple[str, str]]:
    """Calls to a service still on the depth-first path: removing them breaks every loop."""
    called = {c for targets in callees.values() for c in targets}
    starts = [s for s in services if s not in called] + [s for s in services if s in called]
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    closing: set[tuple[str, str]] = set()
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(callees[start]))]
        while stack:
            service, pending = stack[-1]
            callee = next(pending, None)
            if callee is None:
                state[service] = 2
                stack.pop()
            elif state.get(callee) == 1:
                closing.add((service, callee))
            elif callee not in state:
                state[callee] = 1
                stack.append((callee, iter(callees[callee])))
    return closing


def _order_by_callers(by_layer: list[list[str]], edges: list[ServiceEdge]) -> None:
    callers: dict[str, list[str]] = {}
    for e in edges:
        callers.setdefault(e.target, []).append(e.source)
    position: dict[str, float] = {}
    for col in by_layer:
        def key(s: str) -> tuple[float, str]:
            placed = [position[c] for c in callers.get(s, ()) if c in position]
            return (sum(placed) / len(placed) if placed else float("inf"), s)

        col.sort(key=key)
        position.update((s, float(i)) for i, s in enumerate(col))


def _arc_depth(layers_spanned: int) -> float:
    """How far below the lowest box an arc spanning that many layers bottoms out."""
    return 16.0 + 14.0 * min(layers_spanned - 1, 4)


def _route(edge: ServiceEdge, a: NodeBox, b: NodeBox, layers: Mapping[str, int],
           floor: float) -> EdgePath:
    """Calls forward run right side to left side; loop-closing calls arc under every box."""
    if layers[edge.target] > layers[edge.source]:
        x1, y1 = a.x + a.width, a.y + a.height / 2
        x2, y2 = b.x - 2, b.y + b.height / 2
        dx = (x2 - x1) / 2
        c1, c2 = (x1 + dx, y1), (x2 - dx, y2)
    else:
        x1, y1 = a.x + a.width / 2, a.y + a.height
        x2, y2 = b.x + b.width / 2, b.y + b.height + 2
        bottom = floor + _arc_depth(layers[edge.source] - layers[edge.target])
        # both control points at one height, chosen so the curve's midpoint lands on `bottom`
        control = (8 * bottom - y1 - y2) / 6
        c1, c2 = (x1, control), (x2, control)
    d = (f"M{x1:.1f},{y1:.1f} C{c1[0]:.1f},{c1[1]:.1f} {c2[0]:.1f},{c2[1]:.1f} "
         f"{x2:.1f},{y2:.1f}")
    # the point at t = 0.5 on a cubic Bézier curve
    mx = (x1 + 3 * c1[0] + 3 * c2[0] + x2) / 8
    my = (y1 + 3 * c1[1] + 3 * c2[1] + y2) / 8
    return EdgePath(edge=edge, d=d, label_x=round(mx, 1), label_y=round(my, 1))
