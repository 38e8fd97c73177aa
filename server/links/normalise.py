"""Canonical forms of addresses and outlets, so that the same place written two ways hashes to one token."""

from __future__ import annotations

import re
import unicodedata

# Traditional forms and variants that NFKC leaves alone.
_VARIANTS = str.maketrans({"號": "号", "區": "区", "縣": "县", "鎮": "镇", "廣": "广", "東": "东", "＃": "#"})

# Latin abbreviations people type for the Chinese markers (after lower-casing and NFKC).
_LATIN = (
    (re.compile(r"(?<![a-z])(?:province|prov)\.?(?![a-z])"), "省"),
    (re.compile(r"(?<![a-z])city\.?(?![a-z])"), "市"),
    (re.compile(r"(?<![a-z])(?:district|dist)\.?(?![a-z])"), "区"),
    (re.compile(r"(?<![a-z])(?:road|rd)\.?(?![a-z])"), "路"),
    (re.compile(r"(?<![a-z])no\.?(?=\d)"), ""),
)

# Province names, so that "广东省广州市" and "广州市" are one address (the city names the province).
_PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽",
    "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西",
    "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
)  # fmt: skip
_PROVINCE_PREFIX = re.compile(
    "^(?:"
    + "|".join(sorted(_PROVINCES, key=len, reverse=True))
    + r")(?:省|市|自治区|壮族自治区|回族自治区|维吾尔自治区|特别行政区)?"
)
# Administrative markers dropped after a name: 广州市天河区 == 广州天河.
_MARKERS = re.compile(r"(省|市|区|县)")
# A house number written "123号", "123#", "123" or "No.123": one form, the bare number.
_NUMBER = re.compile(r"(\d+)(?:号|#)")
_DROP = re.compile(r"[\s,，.。、;；:：()（）\[\]【】\-_/\\'\"·]+")


def normalise_address(value: str) -> str:
    """One canonical string for an address: width, case, spaces, punctuation and markers unified.

    Both sides of every comparison go through here, so a marker dropped inside a name drops on both.
    """
    text = unicodedata.normalize("NFKC", value).lower().translate(_VARIANTS)
    for pattern, replacement in _LATIN:
        text = pattern.sub(replacement, text)
    text = _DROP.sub("", text)
    stripped = _PROVINCE_PREFIX.sub("", text, count=1)
    if stripped:
        text = stripped
    text = _MARKERS.sub("", text)
    return _NUMBER.sub(r"\1", text)


def normalise_outlet(value: str) -> str:
    """Outlet names compared without width, case and spacing differences."""
    return " ".join(unicodedata.normalize("NFKC", value).split()).lower()
