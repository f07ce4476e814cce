"""kx cr against QEMU's own monitor (`info registers`, a separate HMP socket,
no gdb): CR0, CR2, CR3, CR4, EFER on every vCPU, the KPTI half CR3 selects
at entry_SYSCALL_64 (user PGD) and in do_syscall_64 (kernel PGD), and XCR0
against the register file the monitor prints (YMM only with XCR0.AVX)."""


def rows(report):
    return {r["name"]: r for r in report["registers"]}


def test_cr_matches_monitor_on_every_cpu(kx):
    kx.run_to("do_syscall_64")
    for cpu in (0, 1):
        r = kx.json(f"kx cr --cpu {cpu}")
        m = kx.guest.cpu_registers(cpu)
        got = rows(r)
        assert r["cpu"] == cpu and r["warnings"] == []
        for name in ("cr0", "cr2", "cr3", "cr4", "efer"):
            assert got[name.upper()]["value"] == m[name], name
            assert got[name.upper()]["source"] == "gdbstub"
        assert {"PG", "PE", "WP"} <= set(got["CR0"]["set"])
        assert {"PAE", "OSFXSR", "OSXSAVE", "SMEP"} <= set(got["CR4"]["set"])
        assert "SMAP" in got["CR4"]["clear"]          # Haswell has no SMAP
        assert {"SCE", "LME", "LMA", "NXE"} <= set(got["EFER"]["set"])


def test_cr3_kpti_halves(kx):
    kx.run_to("entry_SYSCALL_64")
    cpu = kx.gdb.eval("$_thread") - 1
    user = kx.json("kx cr")["cr3"]
    assert user["value"] == kx.guest.cpu_registers(cpu)["cr3"]
    assert user["pti"] is True and user["view"] == "user"
    assert user["kernel_pgd"] == user["user_pgd"] - 0x1000 == user["pgd"] - 0x1000
    kx.run_to("do_syscall_64", condition=f"$_thread == {cpu + 1}")
    kernel = kx.json("kx cr")["cr3"]
    assert kernel["view"] == "kernel" and kernel["value"] == kx.guest.cpu_registers(cpu)["cr3"]
    assert kernel["user_pgd"] == kernel["pgd"] + 0x1000
    text = kx.cmd("kx cr")
    assert "KPTI: the kernel PGD" in text and "SDM Vol.3A 2.5" in text


def test_xcr0_from_the_kernel(kx):
    r = rows(kx.json("kx cr"))["XCR0"]
    assert r["source"] == "kernel" and "gdbstub does not expose XCR0" in r["note"]
    assert {"X87", "SSE"} <= set(r["set"])
    # QEMU's monitor prints YMM registers only when XCR0.AVX is set.
    monitor = kx.guest.hmp("info registers")
    assert ("AVX" in r["set"]) == ("YMM00=" in monitor)
