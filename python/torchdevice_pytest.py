"""pytest plugin: run a project's CUDA tests on this machine through torchdevice.

    pytest --torchdevice            # the best available target
    pytest --torchdevice=cpu        # or a chosen one (the target needs the '=')

installs the redirect before conftest files and test modules are imported, so tests marked
``skipif(not torch.cuda.is_available())`` are collected and run; the terminal summary lists the
session's redirected call sites. Per test: ``@pytest.mark.torchdevice`` (or
``torchdevice("cpu")``) or the ``torchdevice`` fixture (which yields the target device) install it
for that test only, and restore what was in force after it.

Registered through the ``pytest11`` entry point when torchdevice is installed; from a checkout,
``-p torchdevice_pytest`` with ``python/`` on ``PYTHONPATH``. It is a module of its own, outside
the torchdevice package, because importing that package installs the redirect: merely having
the plugin loaded changes nothing, and torch is not even imported until a test asks.
"""

import os
import sys

import pytest

OPTION = "--torchdevice"


class _State:
    used = False  # whether anything of this session installed torchdevice
    session_target = None  # the --torchdevice value, None without it


def _requested(args):
    """The target --torchdevice[=TARGET] asks for ('' for the default), or None."""
    value = None
    for arg in args:
        if arg == "--":
            break
        if arg == OPTION:
            value = ""
        elif arg.startswith(OPTION + "="):
            value = arg[len(OPTION) + 1:]
    return value


def _install(target):
    """Installs (or retargets) torchdevice; returns the module, or None when
    TORCHDEVICE_DISABLE=1 says not to."""
    import torchdevice

    if os.environ.get("TORCHDEVICE_DISABLE", "").lower() in ("1", "true", "yes", "on"):
        return None
    torchdevice.install(target or None)
    if not _State.used:
        _State.used = True
        torchdevice.report(enable=True)
    return torchdevice


def _install_session(target):
    if _State.session_target is not None:
        return
    _State.session_target = target
    # Children the tests start are activated too where torch loads torchdevice's entry point.
    os.environ["TORCHDEVICE"] = "1"
    if target:
        os.environ["TORCHDEVICE_TARGET"] = target
    _install(target)


def pytest_addoption(parser):
    parser.getgroup("torchdevice").addoption(
        OPTION, nargs="?", const="", default=None, metavar="TARGET",
        help="install torchdevice before collection: requests for an accelerator this machine "
             "lacks land on TARGET (cpu, mps, cuda; written --torchdevice=TARGET), by default "
             "the best available device")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # A bare --torchdevice takes no value from the next argument (a test path, say): that is
    # what argparse would do with an optional value.
    args[:] = [OPTION + "=" if arg == OPTION else arg for arg in args]
    target = _requested(args)
    if target is not None:
        _install_session(target)  # before the conftest files this hook is about to import


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "torchdevice(target=None): run this test with torchdevice installed; requests "
                   "for an accelerator this machine lacks land on target (default: the best "
                   "available device)")
    target = config.getoption("torchdevice")
    if target is not None:
        _install_session(target)  # the plugin was loaded too late for the hook above


def pytest_report_header(config):
    if _State.session_target is None or "torchdevice" not in sys.modules:
        return None
    import torchdevice

    if not torchdevice.is_installed():
        return "torchdevice: not installed (TORCHDEVICE_DISABLE is set)"
    redirected = ", ".join(torchdevice.redirected()) or "nothing"
    return f"torchdevice: {redirected} -> {torchdevice.target()}"


class _PerTest:
    """Installs torchdevice for one test and puts back what was in force before it."""

    def __init__(self, target):
        self.target = target
        module = sys.modules.get("torchdevice")
        self.before = module.target() if module is not None and module.is_installed() else None

    def __enter__(self):
        module = _install(self.target)
        return module.target() if module is not None else None

    def __exit__(self, *exc):
        import torchdevice

        if self.before is None:
            torchdevice.uninstall()
        else:
            torchdevice.install(str(self.before))


def _marker_target(item):
    marker = item.get_closest_marker("torchdevice")
    if marker is None:
        return None
    return marker.kwargs.get("target", marker.args[0] if marker.args else "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    target = _marker_target(item)
    if target is not None:
        item._torchdevice = _PerTest(target)
        item._torchdevice.__enter__()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield
    per_test = getattr(item, "_torchdevice", None)
    if per_test is not None:
        del item._torchdevice
        per_test.__exit__(None, None, None)


@pytest.fixture(name="torchdevice")
def torchdevice_fixture(request):
    """torchdevice installed for this test (on the torchdevice marker's target, if any); yields
    the target torch.device."""
    with _PerTest(_marker_target(request.node) or "") as target:
        yield target


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _State.used:
        return
    import torchdevice
    from torchdevice.report_view import merge, text_lines

    sites = merge([torchdevice.report()["sites"]])
    terminalreporter.write_sep("=", "torchdevice: redirected call sites")
    for line in text_lines(sites, root=str(config.rootpath)):
        terminalreporter.write_line(line)
