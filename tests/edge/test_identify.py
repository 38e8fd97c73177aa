"""Waybill identification: carrier patterns, check digits, and conflicts said out loud."""

from __future__ import annotations

import random

import pytest

from edge.config import IdentifyConfig, WaybillRule
from edge.identify import WaybillMatcher, gs1_check_ok, luhn_check_ok, mod11_weights_ok, s10_check_ok
from edge.scenario import corrupt_check, s10_waybill


@pytest.mark.parametrize("code", ["RR473124829GB", "EE876543216CN", "CP123456785DE"])
def test_s10_valid(code: str) -> None:
    # Check digits computed by the UPU S10 rule (weights 8 6 4 2 3 5 9 7, 11 - sum mod 11).
    digits = code[2:10]
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    fixed = code[:10] + str(check) + code[11:]
    assert s10_check_ok(fixed)


def test_s10_rejects_every_wrong_check_digit() -> None:
    rng = random.Random(1)
    for _ in range(200):
        good = s10_waybill(rng)
        assert s10_check_ok(good)
        assert not s10_check_ok(corrupt_check(good))


def test_s10_known_example() -> None:
    # The example item identifier of the UPU S10 standard.
    assert s10_check_ok("RR473124829GB")


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("4006381333931", True),  # EAN-13
        ("4006381333932", False),
        ("00012345600012", True),  # GTIN-14
        ("106141411234567897", True),  # SSCC-18
        ("00106141411234567897", True),  # SSCC with its (00) AI
        ("106141411234567898", False),
        ("12ab", False),
    ],
)
def test_gs1(code: str, ok: bool) -> None:
    assert gs1_check_ok(code) is ok


def test_luhn_and_mod11() -> None:
    assert luhn_check_ok("79927398713")
    assert not luhn_check_ok("79927398710")
    assert not luhn_check_ok("x")
    assert not mod11_weights_ok("7")


def test_identify_statuses() -> None:
    m = WaybillMatcher(IdentifyConfig().rules)
    good = s10_waybill(random.Random(3))
    other = s10_waybill(random.Random(4))
    assert m.identify([]).status == "no_read"
    assert m.identify(["  "]).status == "no_read"
    ident = m.identify([good, "6901234567892"])  # a product EAN next to the label is ignored
    assert (ident.status, ident.waybill, ident.carrier) == ("ok", good, "upu-s10")
    assert m.identify([good, good]).status == "ok"
    bad = m.identify([corrupt_check(good)])
    assert bad.status == "no_valid_waybill" and bad.waybill is None
    conflict = m.identify([good, other])
    assert conflict.status == "conflict" and set(conflict.candidates) == {good, other}


def test_carrier_regex_rule() -> None:
    m = WaybillMatcher([WaybillRule(carrier="sf", pattern=r"SF\d{12}", check="none")])
    assert m.identify(["SF123456789012"]).carrier == "sf"
    assert m.identify(["SF12345"]).status == "no_valid_waybill"
