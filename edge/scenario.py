"""Demo scenario: a reproducible day of senders, manifests and parcels, written as import and replay files."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from edge.identify import S10_WEIGHTS
from models.categories import GOODS_CATEGORIES

Kind = Literal[
    "verified",
    "camera_read",
    "unverified",
    "no_realname",
    "unknown_waybill",
    "blacklisted",
    "no_read",
    "bad_check",
    "counterfeit",
    "split_shipment",
]

# Share of each kind of parcel in the scenario; the rest are verified senders.
MIX: dict[Kind, float] = {
    # The scanner line misses the label but the camera photo of it is readable.
    "camera_read": 0.03,
    "unverified": 0.04,
    "no_realname": 0.03,
    "unknown_waybill": 0.03,
    "blacklisted": 0.04,
    "no_read": 0.03,
    "bad_check": 0.01,
    # A verified sender whose goods photo at acceptance shows a counterfeit brand label.
    "counterfeit": 0.03,
    # One split shipment (蚂蚁搬家): shoes from three verified senders sharing a phone, to two places;
    # each parcel clears, and the server's links job consolidates them into one review item.
    "split_shipment": 0.04,
}
ANT_SENDERS = 3
ANT_PLACES = ("上海市浦东新区世纪大道100号", "杭州市西湖区文三路90号")
ROADS = ("长江路", "黄河路", "珠江路")

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
AREAS = ("110101", "310104", "440305", "330106", "510107", "420111")


def resident_id(rng: random.Random) -> str:
    """A well-formed 18-digit resident ID number (GB 11643 check digit); synthetic, belongs to nobody."""
    area = rng.choice(AREAS)
    birth = f"{rng.randint(1960, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{area}{birth}{rng.randint(0, 999):03d}"
    total = sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True))
    return body + ID_CHECK[total % 11]


def s10_waybill(rng: random.Random, prefix: str = "EA", country: str = "CN") -> str:
    serial = f"{rng.randint(0, 99_999_999):08d}"
    total = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return f"{prefix}{serial}{check}{country}"


def corrupt_check(waybill: str) -> str:
    """The same waybill with its check digit wrong: a misread that must never be used."""
    bad = (int(waybill[10]) + 1) % 10
    return waybill[:10] + str(bad) + waybill[11:]


@dataclass
class Sender:
    id_type: str
    id_number: str
    name: str
    phone: str
    address: str
    verified: bool
    verified_at: str | None
    outlet: str
    courier: str
    agreement_customer: bool = False
    usc_code: str | None = None
    qualification: str | None = None


@dataclass
class Parcel:
    kind: Kind
    waybill: str
    sender_id: str | None
    declared_category: str
    codes: list[str] = field(default_factory=list)
    # Photo of the goods taken at acceptance inspection: none, a genuine or a counterfeit brand label.
    goods: Literal["none", "genuine", "counterfeit"] = "none"


@dataclass
class Scenario:
    senders: list[Sender]
    manifests: list[dict[str, object]]
    blacklist: list[str]
    parcels: list[Parcel]

    def expected(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.parcels:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return counts


def build_scenario(n_parcels: int, seed: int = 7) -> Scenario:
    """Parcels in a shuffled but reproducible order; every special kind appears at least once."""
    rng = random.Random(seed)
    n_senders = max(10, n_parcels // 4)
    senders: list[Sender] = []
    for i in range(n_senders):
        is_verified = i % 12 != 5
        senders.append(
            Sender(
                id_type="resident_id",
                id_number=resident_id(rng),
                name=rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2))),
                phone=f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}",
                address=f"{rng.randint(1, 999)}号 {rng.choice(['中山路', '人民路', '解放路', '建设路'])}",
                verified=is_verified,
                verified_at="2026-11-01T08:00:00+00:00" if is_verified else None,
                outlet=f"OUT-{rng.randint(1, 20):03d}",
                courier=f"C{rng.randint(100, 999)}",
            )
        )
    ant_phone = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
    ants = [
        Sender(
            id_type="resident_id",
            id_number=resident_id(rng),
            name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            phone=ant_phone,
            # One address written three ways: the server normalises it to one token.
            address=["广州市白云区机场路8号", "广东省广州市白云区机场路８号", "广州 白云区 机场路 8#"][i],
            verified=True,
            verified_at="2026-11-01T08:00:00+00:00",
            outlet=f"OUT-{rng.randint(1, 20):03d}",
            courier=f"C{rng.randint(100, 999)}",
        )
        for i in range(ANT_SENDERS)
    ]
    verified_senders = [s for s in senders if s.verified]
    unverified = [s for s in senders if not s.verified]
    blacklisted = verified_senders[-max(1, len(verified_senders) // 15) :]
    clean = [s for s in verified_senders if s not in blacklisted]
    kinds: list[Kind] = []
    for kind, share in MIX.items():
        # A split shipment needs parcels from several senders, at least one more than the senders.
        least = ANT_SENDERS + 1 if kind == "split_shipment" else 1
        kinds.extend([kind] * max(least, round(n_parcels * share)))
    kinds = kinds[:n_parcels]
    kinds.extend(["verified"] * (n_parcels - len(kinds)))
    rng.shuffle(kinds)
    parcels: list[Parcel] = []
    manifests: list[dict[str, object]] = []
    used: set[str] = set()
    for kind in kinds:
        waybill = s10_waybill(rng)
        while waybill in used:
            waybill = s10_waybill(rng)
        used.add(waybill)
        category = "footwear_clothing" if kind == "split_shipment" else rng.choice(GOODS_CATEGORIES)
        nth_ant = len([p for p in parcels if p.kind == "split_shipment"])
        sender: Sender | None = {
            "split_shipment": ants[nth_ant % ANT_SENDERS],
            "verified": rng.choice(clean),
            "camera_read": rng.choice(clean),
            "counterfeit": rng.choice(clean),
            "bad_check": rng.choice(clean),
            "no_read": rng.choice(clean),
            "unverified": rng.choice(unverified) if unverified else rng.choice(clean),
            "blacklisted": rng.choice(blacklisted),
        }.get(kind)
        codes = [waybill]
        if kind in ("no_read", "camera_read"):
            codes = []
        elif kind == "bad_check":
            codes = [corrupt_check(waybill)]
        if kind != "unknown_waybill":
            manifests.append(
                {
                    "waybill": waybill,
                    "sender_id_type": "resident_id",
                    # A manifest naming a sender the registry has never seen: no real-name record.
                    "sender_id_number": resident_id(rng) if kind == "no_realname" else sender.id_number,  # type: ignore[union-attr]
                    "declared_name": f"{category} goods",
                    "declared_category": category,
                    "quantity": rng.randint(1, 5),
                    "inspected_on_receipt": True,
                    # The ants' parcels alternate between two places, so senders share both.
                    "destination": ANT_PLACES[nth_ant % len(ANT_PLACES)]
                    if kind == "split_shipment"
                    else f"{rng.randint(1, 999)}号 {rng.choice(ROADS)} {rng.randint(1, 99)}栋",
                }
            )
        goods: Literal["none", "genuine", "counterfeit"] = "none"
        if kind == "counterfeit":
            goods = "counterfeit"
        elif kind == "verified" and rng.random() < 0.25:
            goods = "genuine"
        parcels.append(Parcel(kind, waybill, sender.id_number if sender else None, category, codes, goods))
    return Scenario(senders + ants, manifests, [s.id_number for s in blacklisted], parcels)


def write_replay(parcels: list[Parcel], path: Path, delay: float = 0.0, images: bool = False) -> None:
    """The fake:// scanner's file: one read per line, with the expected kind kept for checking.

    With `images`, each parcel also gets a label-camera photo, an X-ray image and, when it was
    photographed at acceptance, a photo of its goods, written beside the file; an unreadable label
    is torn in the photo too.
    """
    from edge.demo_images import goods_photo, parcel_photo, xray_scan

    folder = path.parent / f"{path.stem}-images"
    if images:
        folder.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for p in parcels:
            line: dict[str, object] = {"codes": p.codes, "delay": delay, "expect": p.kind}
            if images:
                seed = int.from_bytes(p.waybill.encode()[-6:], "big")
                label, xray = folder / f"{p.waybill}-label.jpg", folder / f"{p.waybill}-xray.png"
                goods = folder / f"{p.waybill}-goods.jpg"
                if not label.exists():
                    shown = corrupt_check(p.waybill) if p.kind == "bad_check" else p.waybill
                    label.write_bytes(parcel_photo(shown, seed, damaged=p.kind == "no_read"))
                    xray.write_bytes(xray_scan(seed))
                    if p.goods != "none":
                        goods.write_bytes(goods_photo(seed, counterfeit=p.goods == "counterfeit"))
                shots = [
                    {"path": f"{folder.name}/{label.name}", "kind": "label"},
                    {"path": f"{folder.name}/{xray.name}", "kind": "xray"},
                ]
                if p.goods != "none":
                    shots.append({"path": f"{folder.name}/{goods.name}", "kind": "camera"})
                line["images"] = shots
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")


def write_imports(scenario: Scenario, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    senders = folder / "senders.json"
    manifests = folder / "manifests.json"
    rows = [{k: v for k, v in asdict(s).items() if v is not None} for s in scenario.senders]
    senders.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    manifests.write_text(json.dumps(scenario.manifests, ensure_ascii=False, indent=1))
    return senders, manifests
