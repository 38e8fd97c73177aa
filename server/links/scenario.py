"""A generated planted scenario: split shipments (ants) among ordinary senders, households and merchants."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from server.db import iso

CATEGORIES = (
    "footwear_clothing", "bags_leather", "watches_jewellery", "electronics", "cosmetics",
    "medicines_medical", "food", "toys_children", "auto_parts", "agri_inputs", "printed_matter", "other",
)  # fmt: skip
WINDOW_DAYS = 30
STATIONS = tuple(f"st-{i:02d}" for i in range(20))


def _tok(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Parcel:
    key: str
    sender: str
    category: str
    at: str
    station: str
    site: str
    nodes: dict[str, str]


@dataclass
class Scenario:
    """Parcels in time order, and the planted ants as sets of parcel keys."""

    parcels: list[Parcel] = field(default_factory=list)
    planted: list[set[str]] = field(default_factory=list)


class _Builder:
    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.out = Scenario()
        self.n = 0

    def sender(
        self, name: str, phone: str | None = None, address: str | None = None, org: str | None = None
    ) -> dict[str, str]:
        node = {"phone": phone or _tok("ph", name), "address": address or _tok("ad", name)}
        if org:
            node["org"] = org
        node["outlet"] = f"outlet-{self.rng.randrange(300)}"
        return {"sender": _tok("s", name), **node}

    def parcel(self, who: dict[str, str], category: str, dest: str, at: datetime) -> str:
        self.n += 1
        key = f"p{self.n}"
        station = self.rng.choice(STATIONS)
        nodes = {k: v for k, v in who.items() if k != "sender"}
        nodes["dest"] = dest
        self.out.parcels.append(
            Parcel(key, who["sender"], category, iso(at), station, f"site-{station[-1]}", nodes)
        )
        return key

    def when(self, start: float = 0.0, span: float = WINDOW_DAYS) -> datetime:
        return self.now - timedelta(days=WINDOW_DAYS) + timedelta(days=start + self.rng.random() * span)

    def ordinary(self, who: dict[str, str], count: int, family: str | None = None) -> None:
        # Ordinary people send assorted goods to one to three regular recipients (a household may
        # share one of them), or to anyone.
        regulars = [_tok("d", who["sender"], i) for i in range(self.rng.randint(1, 3))]
        if family:
            regulars[0] = family
        for _ in range(count):
            dest = self.rng.choice(regulars) if self.rng.random() < 0.5 else _tok("d", self.rng.random())
            self.parcel(who, self.rng.choice(CATEGORIES), dest, self.when())

    def ant(self, idx: int) -> None:
        size = self.rng.randint(2, 30)
        k = self.rng.randint(2, max(2, min(size, 10)))
        shared_phone = _tok("ant-ph", idx) if self.rng.random() < 0.5 else None
        shared_addr = None if shared_phone else _tok("ant-ad", idx)
        senders = [self.sender(f"ant{idx}-{j}", phone=shared_phone, address=shared_addr) for j in range(k)]
        category = self.rng.choice(CATEGORIES[:-1])
        dests = [_tok("ant-d", idx, j) for j in range(self.rng.randint(1, 3))]
        start = self.rng.random() * (WINDOW_DAYS - 14)
        span = self.rng.uniform(1, 14)
        planted: set[str] = set()
        for j in range(size):
            who = senders[j % k]
            cat = category if self.rng.random() > 0.1 else self.rng.choice(CATEGORIES)
            planted.add(self.parcel(who, cat, self.rng.choice(dests), self.when(start, span)))
        for who in senders:
            # The ant's senders send ordinary parcels of their own too.
            self.ordinary(who, self.rng.randint(0, 2))
        self.out.planted.append(planted)


def generate(parcels: int, seed: int, now: datetime) -> Scenario:
    """About `parcels` parcels: 4 % in ants of 2-30 over 1-14 days, the rest ordinary traffic with noise."""
    b = _Builder(seed, now)
    ants = max(1, parcels // 400)
    for i in range(ants):
        b.ant(i)
    people = 0
    while b.n < parcels:
        roll = b.rng.random()
        people += 1
        if roll < 0.03:
            # A household: two to four people at one address (often one phone), assorted parcels.
            addr, phone = _tok("hh", people), _tok("hh-ph", people) if b.rng.random() < 0.5 else None
            family = _tok("hh-d", people) if b.rng.random() < 0.3 else None
            for j in range(b.rng.randint(2, 4)):
                who = b.sender(f"hh{people}-{j}", phone=phone, address=addr)
                b.ordinary(who, b.rng.randint(1, 6), family)
        elif roll < 0.035:
            # A merchant: several accounts of one agreement customer, one line of goods, many buyers.
            org, cat = _tok("org", people), b.rng.choice(CATEGORIES)
            for j in range(b.rng.randint(2, 12)):
                who = b.sender(f"m{people}-{j}", org=org)
                for _ in range(b.rng.randint(5, 40)):
                    b.parcel(who, cat, _tok("d", b.rng.random()), b.when())
        elif roll < 0.04:
            # A parcel locker's address given as the sender address by many strangers: a hub.
            hub = _tok("hub", people % 7)
            b.ordinary(b.sender(f"l{people}", address=hub), b.rng.randint(1, 3))
        else:
            b.ordinary(b.sender(f"o{people}"), min(10, int(b.rng.expovariate(0.5)) + 1))
    b.out.parcels.sort(key=lambda p: p.at)
    return b.out
