"""Raw health details become causes with what to do, in both languages; the raw text stays available."""

from __future__ import annotations

import re

import pytest

from edge.web.causes import cause_of
from edge.web.i18n import table

CASES = [
    ("sorter", "sorter unreachable: [Errno 111] Connection refused", "cause_refused_sorter"),
    ("camera", "ConnectionRefusedError: [Errno 111] Connection refused", "cause_refused"),
    ("sync", "[Errno 111] Connection refused", "cause_refused_sync"),
    ("sorter", "sorter unreachable: timed out", "cause_timeout_sorter"),
    ("sorter", "no ACK within 0.500 s", "cause_timeout_sorter"),
    ("sync", "timed out", "cause_timeout_sync"),
    (
        "scanner",
        "could not open port /dev/ttyUSB0: [Errno 2] No such file or directory",
        "cause_no_device_scanner",
    ),
    ("xray", "[Errno 2] No such file or directory: '/srv/xray'", "cause_no_device_xray"),
    ("camera", "[Errno 19] No such device", "cause_no_device"),
    ("scanner", "[Errno 13] Permission denied: '/dev/ttyUSB0'", "cause_permission"),
    ("sync", 'HTTP 401: {"error":{"code":"unauthorized","message":"bad token"}}', "cause_auth"),
    ("sync", 'HTTP 503: {"error":{"code":"unavailable","message":"x"}}', "cause_server_error"),
    ("disk", "disk full (write failed): the reserve of 64 MiB is in use; free space now", "cause_disk_full"),
    ("store", "3 record(s) waiting: [Errno 28] No space left on device", "cause_disk_full"),
    ("sync", "[Errno -2] Name or service not known", "cause_name"),
    ("sorter", "[Errno 113] No route to host", "cause_unreachable"),
    ("sync", '{"error": {"code": "weird"}}', "cause_unexpected"),
    ("camera", "[Errno 5] Input/output error", "cause_unexpected"),
    ("scanner", "replay finished", "state_replay_finished"),
    ("scanner", "quarantined x.png: too small", None),
    ("sorter", "checking the connection", "state_checking"),
    ("sorter", "connected", "state_connected"),
    ("model", "", None),
]


@pytest.mark.parametrize(("device", "raw", "key"), CASES)
def test_raw_details_map_to_causes(device: str, raw: str, key: str | None) -> None:
    assert cause_of(device, raw) == key


def test_every_cause_is_a_sentence_with_an_action_in_both_languages() -> None:
    causes = [k for k in table("en") if k.startswith("cause_")]
    assert {key for _d, _r, key in CASES if key and key.startswith("cause_")} <= set(causes)
    assert {key for _d, _r, key in CASES if key and key.startswith("state_")} <= set(table("en"))
    for lang in ("zh", "en"):
        words = table(lang)
        for key in causes:
            text = words[key]
            assert re.search(r"[:：]", text), (lang, key)  # cause, then what to do
            assert "Errno" not in text and "{" not in text
    assert "检查分拣机网线与控制器地址" in table("zh")["cause_refused_sorter"]
    assert "check the sorter controller's address and cable" in table("en")["cause_refused_sorter"]
