"""gdbext.decoders.syscall_args: strace-style formatting."""
from hypothesis import given, settings, strategies as st

from gdbext.decoders import syscall_args as sa

MEM = {0x1000: b"/etc/passwd\0junk", 0x2000: b"hello, world\n\0", 0x3000: b"A" * 600}


def reader(addr, cap):
    for base, data in MEM.items():
        if base <= addr < base + len(data):
            return data[addr - base:addr - base + cap]
    raise OSError(f"cannot read {addr:#x}")


def test_errno():
    assert sa.errno_name(2) == "ENOENT" and sa.errno_name(-2) == "ENOENT"
    assert sa.errno_name(133) == "EHWPOISON" and sa.errno_name(512) == "ERESTARTSYS"
    assert sa.errno_name(41) is None and sa.errno_name(9999) is None
    assert len([n for n in sa.ERRNO_NAMES if n <= 133]) == 131  # 41 and 58 are holes


def test_format_return():
    assert sa.format_return(-2) == "-2 ENOENT"
    assert sa.format_return((1 << 64) - 2) == "-2 ENOENT"
    assert sa.format_return(-4095) == "-4095"
    assert sa.format_return(-4096) == "-4096"
    assert sa.format_return(14) == "14"
    assert sa.format_return(0x7F0000001000, pointer=True) == "0x7f0000001000"
    assert sa.format_return(-12, pointer=True) == "-12 ENOMEM"


def test_open_flags():
    assert sa.format_open_flags(0) == "O_RDONLY"
    assert sa.format_open_flags(0o2000000) == "O_RDONLY|O_CLOEXEC"
    assert sa.format_open_flags(0o1101) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert sa.format_open_flags(0o4010002) == "O_RDWR|O_SYNC"
    assert sa.format_open_flags(0o10002) == "O_RDWR|O_DSYNC"
    assert sa.format_open_flags(0o20200000) == "O_RDONLY|O_TMPFILE"
    assert sa.format_open_flags(0o200000) == "O_RDONLY|O_DIRECTORY"
    assert sa.format_open_flags(0o2000000 | (1 << 30)) == "O_RDONLY|O_CLOEXEC|0x40000000"


def test_mode_dirfd_mmap():
    assert sa.format_mode(0o644) == "0644" and sa.format_mode(0) == "000"
    assert sa.format_mode(0o7) == "007" and sa.format_mode(0o1777) == "01777"
    assert sa.format_at_dirfd(-100) == "AT_FDCWD"
    assert sa.format_at_dirfd(0xFFFFFF9C) == "AT_FDCWD"
    assert sa.format_at_dirfd(0xFFFFFFFFFFFFFF9C) == "AT_FDCWD"
    assert sa.format_at_dirfd(3) == "3" and sa.format_at_dirfd(0xFFFFFFFF) == "-1"
    assert sa.format_mmap_prot(0) == "PROT_NONE"
    assert sa.format_mmap_prot(3) == "PROT_READ|PROT_WRITE"
    assert sa.format_mmap_flags(0x22) == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert sa.format_mmap_flags(0x40022 | (21 << 26)) == "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB"
    assert sa.format_mmap_flags(0) == "0"


def test_escape_c_string():
    assert sa.escape_c_string(b"hi\n", 64, False) == '"hi\\n"'
    assert sa.escape_c_string(b'a"b\\c\t\x00\xff', 64, False) == '"a\\"b\\\\c\\t\\x00\\xff"'
    assert sa.escape_c_string(b"abcdef", 3, False) == '"abc"...'
    assert sa.escape_c_string(b"abc", 64, True) == '"abc"...'


@given(st.binary(max_size=300), st.integers(0, 400), st.booleans())
def test_unescape_c_string_inverts_escape(data, cap, truncated):
    assert sa.unescape_c_string(sa.escape_c_string(data, cap, truncated)) == data[:cap]


def test_unescape_c_string_refuses_non_strings():
    assert [sa.unescape_c_string(t) for t in ("0x401000 (unreadable)", "NULL", "", None, '"open')] == [None] * 5


def test_format_arg_paths_and_buffers():
    cs = "const char __user *"
    assert sa.format_arg(cs, "filename", 0x1000, reader) == '"/etc/passwd"'
    assert sa.format_arg(cs, "filename", 0, reader) == "NULL"
    assert sa.format_arg(cs, "filename", 0x9000, reader) == "0x9000 (unreadable)"
    assert sa.format_arg(cs, "filename", 0x1000, None) == "0x1000"
    long = sa.format_arg(cs, "pathname", 0x3000, reader)
    assert long == '"' + "A" * sa.PATH_CAP + '"...'
    # write(1, "hello, world\n", 13): capped at count, not at the NUL.
    out = sa.format_arg(cs, "buf", 0x2000, reader, {"fd": 1, "count": 13}, syscall="write")
    assert out == '"hello, world\\n"'
    assert sa.format_arg(cs, "buf", 0x2000, reader, {"fd": 1, "count": 5}) == '"hello"'
    out = sa.format_arg(cs, "buf", 0x3000, reader, {"fd": 1, "count": 600}, syscall="write")
    assert out == '"' + "A" * 64 + '"...'
    # read()'s buffer is an output: pointer only.
    assert sa.format_arg("char __user *", "buf", 0x2000, reader, {"count": 13},
                         syscall="read") == "0x2000"


def test_format_arg_reader_errors_never_escape():
    def boom(addr, cap):
        raise RuntimeError("gdb.MemoryError")
    cs = "const char __user *"
    assert sa.format_arg(cs, "filename", 0x1234, boom) == "0x1234 (unreadable)"
    assert sa.format_arg(cs, "buf", 0x1234, boom, {"count": 3}, "write") == "0x1234 (unreadable)"


def test_format_arg_by_name_and_type():
    assert sa.format_arg("int", "dfd", 0xFFFFFF9C) == "AT_FDCWD"
    assert sa.format_arg("int", "dfd", 5) == "5"
    assert sa.format_arg("unsigned int", "fd", 1) == "1"
    assert sa.format_arg("int", "flags", 0o2000000, other_args={"filename": 1, "mode": 0},
                         syscall=None) == "O_RDONLY|O_CLOEXEC"
    assert sa.format_arg("int", "flags", 0o101, syscall="openat") == "O_WRONLY|O_CREAT"
    assert sa.format_arg("umode_t", "mode", 0o644) == "0644"
    assert sa.format_arg("unsigned long", "prot", 5) == "PROT_READ|PROT_EXEC"
    assert sa.format_arg("unsigned long", "flags", 0x22, syscall="mmap") == \
        "MAP_PRIVATE|MAP_ANONYMOUS"
    assert sa.format_arg("size_t", "count", 13) == "13"
    assert sa.format_arg("size_t", "count", (1 << 64) - 1) == str((1 << 64) - 1)
    assert sa.format_arg("int", "status", 0xFFFFFFFF) == "-1"
    assert sa.format_arg("int", "status", 0xFFFFFFFFFFFFFFFE) == "-2"
    assert sa.format_arg("long", "x", (1 << 64) - 5) == "-5"
    assert sa.format_arg("unsigned int", "x", 0x1_0000_0003) == "3"
    assert sa.format_arg("struct stat __user *", "statbuf", 0x7FFC0000) == "0x7ffc0000"
    assert sa.format_arg("void __user *", "p", 0) == "NULL"
    assert sa.format_arg("const char __user *const __user *", "argv", 0x10) == "0x10"
    assert sa.format_args([("unsigned int", "fd"), ("const char __user *", "buf"),
                           ("size_t", "count")], [1, 0x2000, 13], reader, "write") == \
        ["1", '"hello, world\\n"', "13"]


@settings(max_examples=200, deadline=None)
@given(ctype=st.sampled_from(["int", "long", "unsigned int", "size_t", "const char __user *",
                              "char __user *", "umode_t", "void *", "", "weird_t"]),
       name=st.sampled_from(["filename", "buf", "flags", "mode", "dfd", "fd", "prot", "x", "path"]),
       value=st.integers(-(1 << 63), (1 << 64) - 1),
       count=st.integers(0, 1 << 64),
       syscall=st.sampled_from([None, "write", "openat", "mmap", "read"]),
       data=st.binary(max_size=80), fail=st.booleans())
def test_format_arg_never_raises(ctype, name, value, count, syscall, data, fail):
    def rd(addr, cap):
        if fail:
            raise MemoryError("nope")
        return data[:cap]
    out = sa.format_arg(ctype, name, value, rd, {"count": count, "filename": 1, "mode": 0},
                        syscall)
    assert isinstance(out, str) and out
