"""Capability sets by name (include/uapi/linux/capability.h, 6.1/6.12)."""
from hypothesis import given, strategies as st

from gdbext.decoders import capabilities as caps


def test_names_and_numbers():
    assert caps.CAP_NAMES[0] == "CAP_CHOWN" and caps.CAP_NAMES[21] == "CAP_SYS_ADMIN"
    assert caps.KNOWN_LAST_CAP == 40 and caps.CAP_NAMES[40] == "CAP_CHECKPOINT_RESTORE"
    assert caps.names_to_mask(["CAP_KILL", "CAP_NET_RAW"]) == 0x2020


def test_summaries():
    full = (1 << 41) - 1
    assert caps.summary(caps.decode(0)) == "none"
    assert caps.summary(caps.decode(full, 40)) == "all 41"
    assert caps.summary(caps.decode(full & ~(1 << 16), 40)) == "all but CAP_SYS_MODULE"
    assert caps.summary(caps.decode(0x2020, 40)) == "CAP_KILL CAP_NET_RAW"
    # a kernel that knows fewer capabilities: higher bits are reported, not named
    d = caps.decode(1 << 40 | 1, 39)
    assert d["names"] == ["CAP_CHOWN"] and d["invalid"] == [40] and "beyond CAP_LAST_CAP" in caps.summary(d)
    # a newer kernel's capability 41 is named by number
    assert caps.decode(1 << 41, 41)["names"] == ["CAP_41"]


@given(st.integers(0, (1 << 64) - 1), st.integers(0, 63))
def test_every_bit_is_accounted_for(mask, last):
    d = caps.decode(mask, last)
    assert d["count"] + len(d["invalid"]) == bin(mask).count("1")
    assert all(b > last for b in d["invalid"])
