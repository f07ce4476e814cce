"""gdbext.decoders.kaslr: slide checks, the vote between sources, gate slides,
the build-id note, banner summaries."""
import struct

from hypothesis import given, settings, strategies as st

from gdbext.decoders import descriptors, elfnote
from gdbext.decoders import kaslr as k

ALIGN = 0x200000
SLOTS = k.MAX_SLIDE // ALIGN
slides = st.integers(0, SLOTS - 1).map(lambda n: n * ALIGN)


def test_slide_problem_bounds_and_alignment():
    assert k.slide_problem(0) is None
    assert k.slide_problem(0x35400000) is None
    assert "negative" in k.slide_problem(-0x200000)
    assert "1 GiB" in k.slide_problem(1 << 30)
    assert "multiple" in k.slide_problem(0x35400000 + 0x1000)
    # A stricter CONFIG_PHYSICAL_ALIGN (16 MiB) rejects a 2 MiB multiple.
    assert k.slide_problem(0x200000, align=0x1000000) is not None


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1 << 40), 1 << 40))
def test_slide_problem_is_exactly_range_and_alignment(slide):
    ok = 0 <= slide < k.MAX_SLIDE and slide % ALIGN == 0
    assert (k.slide_problem(slide) is None) == ok


def test_relocatable_only_the_kernel_image():
    assert k.relocatable(0xFFFFFFFF81000000)
    assert k.relocatable(k.START_KERNEL_MAP)
    assert not k.relocatable(0x35000)               # zero-based per-cpu (pcpu_hot in 6.12)
    assert not k.relocatable(0x1000000)             # ABS phys_startup_64
    assert not k.relocatable(0xFFFF888000000000)    # direct map


@settings(max_examples=200, deadline=None)
@given(slides, slides)
def test_vote_two_agreeing_sources_win(slide, other):
    v = k.vote({"idt": slide, "lstar": None, "banner": slide, "build_id": None})
    assert v.agreed and v.slide == slide and sorted(v.agreeing) == ["banner", "idt"]
    # One dissenting source does not beat two agreeing ones.
    v = k.vote({"idt": slide, "banner": slide, "lstar": other})
    assert v.slide == slide


@settings(max_examples=200, deadline=None)
@given(slides)
def test_vote_one_source_is_not_enough(slide):
    assert not k.vote({"idt": slide, "banner": None}).agreed
    assert not k.vote({"idt": slide}).agreed


def test_vote_tie_is_no_verdict():
    v = k.vote({"idt": 0x200000, "lstar": 0x200000, "banner": 0x400000, "build_id": 0x400000})
    assert not v.agreed
    assert v.candidates == {0x200000: ["idt", "lstar"], 0x400000: ["banner", "build_id"]}


def test_vote_invalid_values_never_count():
    # Two sources "agree" on a misaligned value: it is rejected, not taken.
    v = k.vote({"idt": 0x1234, "lstar": 0x1234, "banner": None})
    assert not v.agreed
    assert set(v.rejected) == {"idt", "lstar"} and "multiple" in v.rejected["idt"]
    v = k.vote({"idt": -0x2006A0, "banner": 0, "build_id": 0})
    assert v.slide == 0 and "negative" in v.rejected["idt"]


@settings(max_examples=100, deadline=None)
@given(slides)
def test_idt_slide_from_encoded_gates(slide):
    links = {0: 0xFFFFFFFF81E01030, 3: 0xFFFFFFFF81E01240, 6: 0xFFFFFFFF81E01220, 14: 0xFFFFFFFF81E01280}
    raw = {v: descriptors.encode_gate((a + slide) & k.MASK64) for v, a in links.items()}
    handlers = {v: descriptors.decode_gate(raw[v]).offset for v in raw}
    got, per_vector = k.idt_slide(handlers, links)
    assert got == slide and set(per_vector.values()) == {slide}


def test_idt_slide_majority_and_disagreement():
    links = {0: 0x1000, 3: 0x2000, 6: 0x3000, 14: 0x4000}
    hooked = {0: 0x201000, 3: 0x202000, 6: 0x203000, 14: 0xDEAD0000}   # one hooked gate
    assert k.idt_slide(hooked, links)[0] == 0x200000
    split = {0: 0x201000, 3: 0x202000, 6: 0x403000, 14: 0x404000}
    assert k.idt_slide(split, links)[0] is None
    assert k.idt_slide({}, links) == (None, {})


def test_signed_delta_wraps_64_bits():
    assert k.signed_delta(0xFFFFFFFF81C00990, 0xFFFFFFFF81E01030) == -0x2006A0
    assert k.signed_delta(0xFFFFFFFFB7201030, 0xFFFFFFFF81E01030) == 0x35400000
    assert k.signed_delta(0xFFFFFFFFDE400000, 0) == -0x21C00000


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def test_find_build_id_among_other_notes():
    build_id = bytes(range(20))
    notes = (_note(b"Linux\0", 0x101, b"\0\0\0\0") + _note(b"Xen\0", 6, b"linux\0")
             + _note(b"GNU\0", 3, build_id) + _note(b"Xen\0", 7, b"2.6\0"))
    off, got = elfnote.find_build_id(notes)
    assert got == build_id
    assert notes[off + 12:off + 16] == b"GNU\0"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_find_build_id_never_raises(junk):
    hit = elfnote.find_build_id(junk)
    assert hit is None or isinstance(hit[1], bytes)


def test_find_build_id_absent_or_truncated():
    assert elfnote.find_build_id(_note(b"Linux\0", 1, b"abcd")) is None
    full = _note(b"GNU\0", 3, bytes(20))
    assert elfnote.find_build_id(full[:-4]) is None


def test_banner_summary():
    banner = ("Linux version 6.12.117+deb12-cloud-amd64 (debian-kernel@lists.debian.org) "
              "(x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils "
              "for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2025-11-14)\n")
    assert k.banner_summary(banner) == ("6.12.117+deb12-cloud-amd64 #1 SMP PREEMPT_DYNAMIC "
                                        "Debian 6.12.117-1~deb12u1 (2025-11-14)")
    assert k.banner_summary("garbage") == "garbage"


def test_printable_prefix_and_randomized():
    assert k.printable_prefix(b"Linux version 6.1\0zz") == "Linux version 6.1"
    assert k.printable_prefix(b"\xcf\x2b\xc2\xfe" * 8) == ("cf2bc2fe" * 4)
    assert k.randomized("page_offset_base", 0xFFFF888000000000) is False
    assert k.randomized("page_offset_base", 0xFFFF8DCF00000000) is True
    assert k.randomized("vmalloc_base", 0xFFA0000000000000, levels=5) is False
    assert k.randomized("vmalloc_base", None) is None
