"""Weighing one image's barcode reads across ladder steps: which codes to accept, which are contested."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from scanner_drivers.barcodes import engines as engines
from scanner_drivers.barcodes.engines import EngineRead

# Retail codes carry one mod-10 check digit, so a misjudged bar width often still gives a valid number;
# their misreads land on the same bars as the true read, usually on other scan rows of the code.
RETAIL_SYMBOLOGIES = frozenset({"EAN13", "EAN8", "UPCA", "UPCE", "ISBN10", "ISBN13"})


def near(a: EngineRead, b: EngineRead) -> bool:
    """True when two reads are of one place: the centre of either lies in the other's box, give or
    take a margin (reads of one code from different variants land a little apart, and a thin
    linear read is a line across the code)."""
    box_a, box_b = engines.bounding_box(a.corners), engines.bounding_box(b.corners)
    if box_a is None or box_b is None:
        return True
    margin = max(8.0, 0.15 * max(box_a[2], box_a[3], box_b[2], box_b[3]))

    def centre_in(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        return (
            other[0] - margin <= cx <= other[0] + other[2] + margin
            and other[1] - margin <= cy <= other[1] + other[3] + margin
        )

    return centre_in(box_a, box_b) or centre_in(box_b, box_a)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> float:
    return max(0, min(a1, b1) - max(a0, b0)) / max(1, min(a1 - a0, b1 - b0))


def _gap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, max(a0, b0) - min(a1, b1))


def same_bars(a: EngineRead, b: EngineRead) -> bool:
    """True when two linear reads cross the same bars: they cover mostly the same stretch along the
    code and lie less than half a code length apart across it (two scan rows of one code, which
    the centre test in near() misses when the rows are far apart on a tall code)."""
    box_a, box_b = engines.bounding_box(a.corners), engines.bounding_box(b.corners)
    if box_a is None or box_b is None:
        return True
    xa, xb = (box_a[0], box_a[0] + box_a[2]), (box_b[0], box_b[0] + box_b[2])
    ya, yb = (box_a[1], box_a[1] + box_a[3]), (box_b[1], box_b[1] + box_b[3])
    across = 0.5 * max(box_a[2], box_a[3], box_b[2], box_b[3])
    # A read runs along the longer side of its box; a diagonal one may run either way.
    along_x = box_a[2] >= box_a[3] or box_b[2] >= box_b[3]
    along_y = box_a[3] >= box_a[2] or box_b[3] >= box_b[2]
    return (along_x and _overlap(*xa, *xb) >= 0.5 and _gap(*ya, *yb) <= across) or (
        along_y and _overlap(*ya, *yb) >= 0.5 and _gap(*xa, *xb) <= across
    )


def _one_place(a: EngineRead, b: EngineRead) -> bool:
    """Reads to weigh together: retail reads across the same bars, whatever their text (rivals);
    otherwise the same content of the same family near by. Other symbologies carry stronger checks,
    and shipping labels stack different codes close together, so different texts are different codes.
    """
    if a.symbology in RETAIL_SYMBOLOGIES and b.symbology in RETAIL_SYMBOLOGIES:
        return same_bars(a, b)
    same_family = engines.is_matrix(a.symbology) == engines.is_matrix(b.symbology)
    return same_family and engines.same_text(a.text, b.text) and near(a, b)


@dataclass
class _Place:
    """The reads of one physical spot, grouped by text (modulo presentation), each with its step."""

    matrix: bool
    reads: list[tuple[str, EngineRead]] = field(default_factory=list)

    def by_text(self) -> list[list[tuple[str, EngineRead]]]:
        groups: list[list[tuple[str, EngineRead]]] = []
        for step, read in self.reads:
            group = next((g for g in groups if engines.same_text(g[0][1].text, read.text)), None)
            if group is None:
                groups.append([(step, read)])
            else:
                group.append((step, read))
        return groups


@dataclass(frozen=True)
class Verdict:
    """One accepted code and whether more ladder steps could still change it."""

    read: EngineRead
    settled: bool


class Evidence:
    """Every read one image's ladder has made so far, and what they amount to.

    Linear codes carry at most a weak check digit, so their reads are weighed: a text's weight is
    the number of scan rows its reads span (zxing-cpp: the height of the detection, in pixels of the
    original image; pyzbar gives no such measure and counts as pyzbar_weight rows), summed over
    steps, each step counting once since one engine on one image repeats its own mistakes. A text
    is supported by a confident read or by reads from two steps. When one place gives several texts,
    a text is accepted only if it outweighs all the others together contest_ratio times: two texts
    on the same bars mean at least one misread, and a no-read is better than a wrong waybill.
    Matrix codes are protected by error correction and accepted as read.
    """

    def __init__(self, *, settled_rows: float, contest_ratio: float, pyzbar_weight: float) -> None:
        self.settled_rows = settled_rows
        self.contest_ratio = contest_ratio
        self.pyzbar_weight = pyzbar_weight
        self.places: list[_Place] = []

    def add(self, step: str, reads: Sequence[EngineRead]) -> None:
        """Fold one step's reads in."""
        for read in reads:
            matrix = engines.is_matrix(read.symbology)
            place = next((p for p in self.places if any(_one_place(read, seen) for _, seen in p.reads)), None)
            if place is None:
                place = _Place(matrix)
                self.places.append(place)
            place.reads.append((step, read))

    def _weight(self, group: list[tuple[str, EngineRead]]) -> float:
        best: dict[str, float] = {}
        for step, read in group:
            rows = (
                self.pyzbar_weight
                if read.engine == engines.ENGINE_PYZBAR
                else engines.linear_rows(read.corners)
            )
            best[step] = max(best.get(step, 0.0), rows)
        return sum(best.values())

    def _linear_verdict(self, place: _Place) -> Verdict | None:
        groups = place.by_text()
        weights = [self._weight(group) for group in groups]
        best = max(range(len(groups)), key=weights.__getitem__)
        group, weight = groups[best], weights[best]
        others = sum(weights) - weight
        supported = any(read.confident for _, read in group) or len({step for step, _ in group}) >= 2
        if not supported or (others > 0 and weight < self.contest_ratio * others):
            return None
        # A read across many rows with no rival is final; a thin or contested one may yet be
        # outweighed by a later step, so the ladder goes on while its budget lasts.
        return Verdict(group[0][1], weight >= self.settled_rows and len(groups) == 1)

    def verdicts(self) -> list[Verdict]:
        """The codes the reads so far support, in the order their places were first seen."""
        out: list[Verdict] = []
        for place in self.places:
            if place.matrix:
                out.extend(Verdict(group[0][1], True) for group in place.by_text())
            elif (verdict := self._linear_verdict(place)) is not None:
                out.append(verdict)
        return out

    def retail_in_doubt(self) -> bool:
        """True when some retail code was seen but is not settled: unconfirmed, thin, or contested."""
        for place in self.places:
            if place.matrix or place.reads[0][1].symbology not in RETAIL_SYMBOLOGIES:
                continue
            verdict = self._linear_verdict(place)
            if verdict is None or not verdict.settled:
                return True
        return False

    def seen_any(self) -> bool:
        """True when some step read anything at all, however doubtful."""
        return bool(self.places)

    def accepted(self) -> list[EngineRead]:
        return [verdict.read for verdict in self.verdicts()]

    def settled(self) -> bool:
        """True when some code is accepted and every accepted code is established enough to stop looking."""
        verdicts = self.verdicts()
        return bool(verdicts) and all(verdict.settled for verdict in verdicts)
