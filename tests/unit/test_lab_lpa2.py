"""`lab boot --lpa2`: the arm64 CPU model with FEAT_LPA2 on, and the
combinations it refuses."""
import pytest

from kxlab import cli, qemu_arm64


def _boot_args(*argv):
    return cli._parser().parse_args(["boot", *argv])


def test_lpa2_reaches_the_cpu_model(monkeypatch):
    monkeypatch.setattr(qemu_arm64.bootstrap, "ensure_arch", lambda arch: None)
    opts = cli._opts(_boot_args("--arch", "arm64", "--kernel", "6.12", "--lpa2"))
    assert opts.lpa2 and opts.arch == "arm64"
    assert qemu_arm64.prefix(opts.cpu, opts.lpa2)[-1] == "max,lpa2=on,pauth-impdef=on"
    assert qemu_arm64.prefix("", False)[-1] == "max,lpa2=off,pauth-impdef=on"
    assert not cli._opts(_boot_args("--arch", "arm64")).lpa2


@pytest.mark.parametrize("argv", [("--lpa2",), ("--arch", "arm64", "--lpa2", "--cpu", "max")])
def test_lpa2_refused_where_it_means_nothing(argv):
    with pytest.raises(SystemExit, match="--lpa2 is for --arch arm64"):
        cli._opts(_boot_args(*argv))
