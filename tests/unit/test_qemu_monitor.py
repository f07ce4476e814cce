"""QEMU's `info registers` text, as QEMU 7.2 prints it for an idle x86-64 vCPU."""
from gdbext.decoders.qemu_monitor import parse_info_registers

IDLE_IN_SHADOW = """\
RAX=0000000000000000 RBX=0000000000000001 RCX=0000000000000000 RDX=0000000000000000
RIP=ffffffff81a18134 RFL=00000206 [-----P-] CPL=0 II=1 A20=1 SMM=0 HLT=0
ES =0000 0000000000000000 ffffffff 00c00000
CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]
TR =0040 fffffe0000045000 00004087 00008900 DPL=0 TSS64-avl
GDT=     fffffe0000042000 0000007f
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=0000000000000000 CR3=0000000004a3a000 CR4=00350ef0
EFER=0000000000000d01
"""


def test_state_flags_and_registers():
    regs = parse_info_registers(IDLE_IN_SHADOW)
    assert (regs["ii"], regs["hlt"], regs["smm"], regs["a20"]) == (1, 0, 0, 1)
    assert regs["rip"] == 0xFFFFFFFF81A18134 and regs["efer"] == 0xD01
    assert regs["tr_seg"]["base"] == 0xFFFFFE0000045000
    assert regs["gdt"] == {"base": 0xFFFFFE0000042000, "limit": 0x7F}


def test_a_halted_vcpu_out_of_the_shadow():
    regs = parse_info_registers(IDLE_IN_SHADOW.replace("II=1", "II=0").replace("HLT=0", "HLT=1"))
    assert (regs["ii"], regs["hlt"]) == (0, 1)
