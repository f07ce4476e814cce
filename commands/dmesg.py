"""kx dmesg: the kernel log from the printk ring buffer in guest memory."""
import argparse

from gdbext import errors
from gdbext.decoders import printk_ring
from gdbext.kernel import printk
from gdbext.render import Report, Text

from .base import KxCommand, add_cpu_option


def level_word(text: str):
    if str(text).lower() == "console":
        return "console"
    try:
        return printk_ring.parse_level(text)
    except errors.DecodeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or console)") from None


def count(text: str) -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--tail must be >= 0, got {n}")
    return n


class KxDmesg(KxCommand):
    """Show the kernel log from the printk ring buffer in guest memory.
Usage: kx dmesg [--level L] [--tail N] [--follow] [--json]

Reads *prb (the lockless ring of 5.10+: descriptors, infos and the text
data ring) and prints each record as <level>[seconds] text, oldest first.
--level L: records of level L or more severe (0-7, or emerg alert crit err
warning notice info debug); --level console: those the console prints
(level below console_loglevel).  --tail N: the last N.  --follow: only the
records newer than the newest one at the previous `kx dmesg` (run it at
each stop).  Records still open for continuation (committed, not yet
finalized) are marked with "+"; the kernel's own readers wait for them."""

    name = "dmesg"
    completions = ("console",) + printk_ring.LEVEL_NAMES

    def arguments(self, p):
        p.add_argument("--level", type=level_word, default=None, metavar="L")
        p.add_argument("--tail", type=count, default=None, metavar="N")
        p.add_argument("--follow", action="store_true")
        add_cpu_option(p)

    def run(self, args):
        console = args.level == "console"
        data = printk.log(None if console else args.level, console, args.tail, args.follow, args.cpu)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text()
        for r in d["records"]:
            mark = "+" if r["state"] != "finalized" else " "
            lines = r["text"].split("\n")
            for line in lines:
                t.add(f"<{r['level']}>", "bad" if r["level"] <= 3 else "dim")
                t.add(f"{r['timestamp']}{mark}", "num").add(f"{line}\n")
            if r["text_lost"]:
                t.add("    (text lost: the data block was overwritten or never written)\n", "warn")
        if d["note"]:
            t.add(f"kx dmesg: {d['note']}\n", "dim")
        elif d["since_seq"] is not None and not d["records"]:
            t.add(f"kx dmesg: no records after seq {d['since_seq']}\n", "dim")
        # Reusable descriptors are free slots (the ring's normal state).
        lost = sum(n for k, n in d["skipped"].items() if k != "reusable")
        if lost:
            t.add(f"kx dmesg: {lost} descriptors skipped ({_skipped(d['skipped'])})\n", "dim")
        return t


def _skipped(counts):
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n)


def register():
    KxDmesg()
