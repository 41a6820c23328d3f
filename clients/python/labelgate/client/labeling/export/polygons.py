"""Binary masks -> polygons without OpenCV (the light client has none), for the polygon outputs.

Outlines run along pixel edges (vertices on pixel corners), so with no simplification the even-odd
fill of an object's polygons is exactly its mask. A hole is bridged into the outline around it by
a zero-width cut (the same segment there and back, which no even-odd fill counts), so the formats
whose readers union separate polygons (COCO) keep holes. `simplify` (Douglas-Peucker) moves no
outline more than `tolerance` pixels.
"""

from __future__ import annotations

import numpy as np

Polygon = np.ndarray  # N x 2 float64 (x, y) vertices, closed implicitly

# Moves along a pixel edge: right, down, left, up (image coordinates, y down).
_DX = (1, 0, -1, 0)
_DY = (0, 1, 0, -1)


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[Polygon]:
    """One polygon per 4-connected component of the mask, its holes bridged in; components whose
    simplified outline has under 3 vertices are dropped (specks no polygon reader accepts)."""
    loops = _trace_loops(np.asarray(mask, dtype=bool))
    signed_areas = np.array([_signed_area(loop) for loop in loops])
    outers = [loop for loop, area in zip(loops, signed_areas) if area > 0]
    holes = [loop for loop, area in zip(loops, signed_areas) if area < 0]
    members: list[list[np.ndarray]] = [[] for _ in outers]
    bounds = np.array([[*o.min(axis=0), *o.max(axis=0)] for o in outers]).reshape(-1, 4)
    areas = signed_areas[signed_areas > 0]
    for hole in holes:
        owner = _enclosing_outer(hole, outers, bounds, areas)
        if owner is not None:
            members[owner].append(hole)
    polygons = []
    for outer, its_holes in zip(outers, members):
        polygon = simplify(outer, tolerance)
        if len(polygon) < 3:
            continue
        for hole in its_holes:
            hole = simplify(hole, tolerance)
            if len(hole) >= 3:
                polygon = bridge(polygon, hole)
        polygons.append(polygon)
    return polygons


def merge_polygons(polygons: list[Polygon]) -> Polygon | None:
    """All of an object's polygons as one (formats with one polygon per object, like YOLO)."""
    if not polygons:
        return None
    merged = polygons[0]
    for polygon in polygons[1:]:
        merged = bridge(merged, polygon)
    return merged


def bridge(polygon: Polygon, other: Polygon) -> Polygon:
    """`polygon` and `other` as one polygon, joined by a cut between their closest vertices."""
    distances = ((polygon[:, None, :] - other[None, :, :]) ** 2).sum(axis=2)
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    loop = np.concatenate([other[j:], other[: j + 1]])
    return np.concatenate([polygon[: i + 1], loop, polygon[i:]])


def simplify(loop: Polygon, tolerance: float) -> Polygon:
    """Douglas-Peucker on a closed loop: every dropped vertex lies within `tolerance` of the result."""
    if tolerance <= 0 or len(loop) < 4:
        return loop
    far = int(np.argmax(((loop - loop[0]) ** 2).sum(axis=1)))
    closed = np.concatenate([loop, loop[:1]])
    keep = np.zeros(len(closed), dtype=bool)
    keep[[0, far, len(closed) - 1]] = True
    stack = [(0, far), (far, len(closed) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        inner = closed[start + 1:end]
        distance = _distance_to_segment(inner, closed[start], closed[end])
        worst = int(np.argmax(distance))
        if distance[worst] > tolerance:
            middle = start + 1 + worst
            keep[middle] = True
            stack += [(start, middle), (middle, end)]
    return closed[:-1][keep[:-1]]


def _distance_to_segment(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    length2 = float(ab @ ab)
    if length2 == 0:
        return np.sqrt(((points - a) ** 2).sum(axis=1))
    t = np.clip(((points - a) @ ab) / length2, 0.0, 1.0)
    return np.sqrt(((points - (a + t[:, None] * ab)) ** 2).sum(axis=1))


def _trace_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines along pixel edges, mask on the right of the direction of travel: outer
    boundaries clockwise on screen (positive shoelace area with y down), holes anticlockwise.
    Only corner vertices are kept."""
    width = mask.shape[1]
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    stride = width + 1
    outgoing: dict[int, int] = {}  # vertex id (y * stride + x) -> bit set of directions leaving it
    edges = (
        (0, inside & ~padded[:-2, 1:-1], 0, 0),  # top edge, leaving the top-left corner rightwards
        (1, inside & ~padded[1:-1, 2:], 1, 0),  # right edge, down from the top-right corner
        (2, inside & ~padded[2:, 1:-1], 1, 1),  # bottom edge, left from the bottom-right corner
        (3, inside & ~padded[1:-1, :-2], 0, 1),  # left edge, up from the bottom-left corner
    )
    for direction, present, x_offset, y_offset in edges:
        rows, cols = np.nonzero(present)
        for vertex in ((rows + y_offset) * stride + cols + x_offset).tolist():
            outgoing[vertex] = outgoing.get(vertex, 0) | (1 << direction)
    remaining = dict(outgoing)
    loops = []
    while remaining:
        start = next(iter(remaining))
        first = _lowest_bit(remaining[start])
        vertex, direction, corners = start, first, [start]
        while True:
            _take(remaining, vertex, direction)
            vertex += _DY[direction] * stride + _DX[direction]
            bits = outgoing[vertex]
            # Two ways on only where two pixels touch at a corner: turn right, round the same pixel.
            turn = _lowest_bit(bits) if bits & (bits - 1) == 0 else (direction + 1) % 4
            if vertex == start and turn == first:
                break
            if turn != direction:
                corners.append(vertex)
            direction = turn
        if len(corners) > 1 and first == direction:  # the start is mid-edge: not a corner
            corners = corners[1:]
        ids = np.asarray(corners, dtype=np.int64)
        loops.append(np.stack([ids % stride, ids // stride], axis=1).astype(np.float64))
    return loops


def _lowest_bit(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def _take(remaining: dict[int, int], vertex: int, direction: int) -> None:
    bits = remaining[vertex] & ~(1 << direction)
    if bits:
        remaining[vertex] = bits
    else:
        del remaining[vertex]


def _signed_area(loop: np.ndarray) -> float:
    x, y = loop[:, 0], loop[:, 1]
    return 0.5 * float(x[:-1] @ y[1:] - x[1:] @ y[:-1] + x[-1] * y[0] - x[0] * y[-1])


def _enclosing_outer(hole: np.ndarray, outers: list[np.ndarray], bounds: np.ndarray, areas: np.ndarray) -> int | None:
    """The smallest outer boundary around the hole: tested at the centre of the mask pixel on the
    right of the hole's first edge, which lies on no pixel edge, so the test is never ambiguous.
    Only outers whose bounding box holds that point are tested, smallest first."""
    (x0, y0), (x1, y1) = hole[0], hole[1]
    step_x, step_y = np.sign(x1 - x0), np.sign(y1 - y0)
    # Right of travel (y down): (dx, dy) -> (-dy, dx); the pixel centre half a pixel in from the edge.
    x, y = x0 + 0.5 * step_x - 0.5 * step_y, y0 + 0.5 * step_y + 0.5 * step_x
    around = np.flatnonzero((bounds[:, 0] < x) & (x < bounds[:, 2]) & (bounds[:, 1] < y) & (y < bounds[:, 3]))
    for index in around[np.argsort(areas[around], kind="stable")].tolist():
        if _contains(outers[index], (x, y)):
            return index
    return None


def _contains(loop: np.ndarray, point: tuple[float, float]) -> bool:
    x, y = point
    x0, y0 = loop[:, 0], loop[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return bool(np.count_nonzero(crosses & (x < x_at)) % 2)
