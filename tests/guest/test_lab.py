"""The lab itself, checked against independent ground truth: the workload's
serial console, System.map, and QEMU's own monitor (HMP socket, not gdb)."""
def test_workload_heartbeat(lab):
    """The workload runs its syscall rounds and reports -ENOSYS for the bad nr."""
    w = lab.guest.workload()
    assert w["seq"] == [39, 1, 257, 3, 35, 1000]
    m = lab.guest.wait_for(r"KX-HEARTBEAT round=\d+ pid=(\d+) fd=(\d+) invalid=(-?\d+)")
    assert int(m.group(1)) == w["pid"]
    assert int(m.group(3)) == -38  # ENOSYS
    assert "Hello from syscall (64-bit)" in lab.guest.serial()
    assert "Hello from int $0x80 (32-bit)" in lab.guest.serial()


def test_help_kx_lists_prefix(kx):
    out = kx.cmd("help kx")
    for sub in ("msr", "gdt", "idt", "tss"):
        assert f"kx {sub} -- " in out
    assert "inspect the Linux kernel's syscall entry path" in out


def test_break_at_entry_syscall_64_matches_system_map(kx):
    """$pc at a breakpoint on entry_SYSCALL_64 is System.map's address, and
    QEMU's monitor agrees on RIP and CR3 for the vCPU that stopped."""
    entry = kx.symbols["entry_SYSCALL_64"]
    kx.run_to("entry_SYSCALL_64")
    pc = kx.reg("pc")
    assert pc == entry
    cpu = kx.gdb.eval("$_thread") - 1
    monitor = kx.guest.cpu_registers(cpu)
    assert monitor["rip"] == entry
    assert monitor["cr3"] == kx.reg("cr3")
    assert monitor["efer"] == kx.reg("efer")
    # The syscall instruction left the user RIP in RCX and RFLAGS in R11
    # (SDM Vol.2B SYSCALL): a user address, and IF set in the saved flags.
    assert kx.reg("rcx") < (1 << 47)
    assert kx.reg("r11") & (1 << 9)


def test_guest_runs_on_after_stop(kx):
    assert kx.heartbeat_continues()


def test_the_guest_runs_the_kernel_asked_for(kx):
    """init_uts_ns's release (read by gdb itself) is the ABI the lab fetched,
    and the lab's boots before the heartbeat are on record (an early oops
    boots again).  Read at a kernel stop: at a user-mode stop under PTI the
    selected vCPU's page tables, which gdb reads through, map no kernel data."""
    kx.run_to("do_syscall_64")
    release = kx.gdb.cmd("output init_uts_ns.name.release").strip()
    assert release.strip('"').split('"')[0] == kx.kernel.abi
    assert kx.config.kernel == kx.kernel.series
    assert len(kx.guest.boot_failures) < 3
