"""The ``torchdevice`` command: run an unmodified CUDA program through torchdevice.

    torchdevice run [OPTIONS] SCRIPT [ARGS...]
    torchdevice run [OPTIONS] -m MODULE [ARGS...]
    torchdevice info
    torchdevice coverage [--write PATH | --check PATH]
    torchdevice report FILE... [--html PAGE]

(also ``python -m torchdevice ...``). The program runs in this process, after torchdevice is
installed, and sees what plain ``python SCRIPT ARGS...`` would give it: ``sys.argv``,
``sys.path[0]``, a ``__main__`` module, the working directory, the exit code, tracebacks that start
at its own code, and Ctrl-C. Every Python process it starts is activated too, through
``torchdevice/_activate`` on ``PYTHONPATH`` (see docs/launcher.md).
"""

import atexit
import builtins
import importlib.machinery
import os
import signal
import sys
import types

import torchdevice

PROG = "torchdevice"
USAGE = f"""usage: {PROG} run [OPTIONS] SCRIPT [ARGS...]
       {PROG} run [OPTIONS] -m MODULE [ARGS...]
       {PROG} info
       {PROG} coverage [--write PATH | --check PATH]
       {PROG} report FILE... [--html PAGE]

options (before SCRIPT or -m):
  --target DEVICE     where redirected requests go (cpu, mps, cuda; default: the best available)
  --log-level LEVEL   trace, debug, info, warn (default), error or off
  --report FILE       write the redirect report there as JSON at exit (other processes of
                      the program write FILE's name tagged .rankN or .pidN beside it)
  -h, --help          show this message"""

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")
ACTIVATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_activate")
# Frames of this file sit between the interpreter and the program: not part of its traceback.
_LAUNCHER_FILE = os.path.abspath(__file__)


class UsageError(Exception):
    pass


def parse_run(args):
    """Splits `run`'s arguments into (options, kind, what, program args); kind is 'script' or
    'module'."""
    options = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            print(USAGE)
            raise SystemExit(0)
        if arg == "-m":
            if i + 1 == len(args):
                raise UsageError("-m needs a module name")
            return options, "module", args[i + 1], args[i + 2:]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, has_value, value = arg.partition("=")
        if name not in ("--target", "--log-level", "--report"):
            raise UsageError(f"unrecognized option '{arg}'")
        if not has_value:
            if i + 1 == len(args):
                raise UsageError(f"option '{name}' needs a value")
            i += 1
            value = args[i]
        if name == "--log-level" and value not in LOG_LEVELS:
            raise UsageError(f"invalid log level '{value}' (choose from {', '.join(LOG_LEVELS)})")
        options[name[2:].replace("-", "_")] = value
        i += 1
    if i == len(args):
        raise UsageError("no script or -m module to run")
    return options, "script", args[i], args[i + 1:]


def activate_children(options):
    """Makes every Python process started below this one activate torchdevice too."""
    paths = [ACTIVATE_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ["TORCHDEVICE_ACTIVATE"] = "1"
    if "target" in options:
        os.environ["TORCHDEVICE_TARGET"] = options["target"]
    if "log_level" in options:
        os.environ["TORCHDEVICE_LOG_LEVEL"] = options["log_level"]
    if "report" in options:
        # Absolute: the program and its children may change directory.
        os.environ["TORCHDEVICE_REPORT"] = os.path.abspath(options["report"])
        os.environ["TORCHDEVICE_REPORT_PID"] = str(os.getpid())


def install(options):
    if os.environ.get("TORCHDEVICE_DISABLE", "").lower() in ("1", "true", "yes", "on"):
        return
    # `import torchdevice` above installed with the environment as it was; reinstall so that the
    # options (log level included) apply, and "installed" is said at the level asked for.
    torchdevice.uninstall()
    torchdevice.install(options.get("target"))
    torchdevice._configure_report()


def program_frames(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename == _LAUNCHER_FILE:
        tb = tb.tb_next
    return tb


def fresh_main():
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    return main


def run_script(path):
    """Runs a script file as plain python does: in a fresh __main__, with its folder first on
    sys.path. A folder or zip file with a __main__.py goes through runpy, as in python."""
    if os.path.isdir(path) or not path.endswith(".py") and _is_zip(path):
        import runpy

        sys.path[0] = os.path.abspath(path)
        fresh_main()
        runpy._run_module_as_main("__main__", False)
        return
    absolute = os.path.abspath(path)
    try:
        with open(absolute, "rb") as source_file:
            source = source_file.read()
    except OSError as error:
        print(f"{PROG}: can't open file {absolute!r}: [Errno {error.errno}] {error.strerror}",
              file=sys.stderr)
        raise SystemExit(2)
    sys.path[0] = os.path.dirname(os.path.realpath(absolute))
    main = fresh_main()
    main.__file__ = absolute
    main.__cached__ = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", absolute)
    exec(compile(source, absolute, "exec", dont_inherit=True), main.__dict__)


def _is_zip(path):
    import zipfile

    return zipfile.is_zipfile(path)


def run_module(name):
    """What `python -m` itself calls: runpy's own frames and messages ("No module named ...")
    are exactly python's."""
    import runpy

    sys.path[0] = os.getcwd()
    fresh_main()
    runpy._run_module_as_main(name, True)


_interrupted = False


def _die_of_sigint():
    # Plain python ends an uncaught KeyboardInterrupt by dying of SIGINT once atexit handlers ran,
    # so shells and parents see "killed by SIGINT" rather than exit status 1.
    if _interrupted:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def run(args):
    try:
        options, kind, what, program_args = parse_run(args)
    except UsageError as error:
        print(f"{USAGE}\n{PROG}: error: {error}", file=sys.stderr)
        return 2
    global _interrupted
    atexit.register(_die_of_sigint)  # registered before the program's handlers: runs after them
    activate_children(options)
    install(options)
    sys.argv = [what] + program_args
    try:
        if kind == "module":
            run_module(what)
        else:
            run_script(what)
    except SystemExit:
        raise
    except BaseException as error:  # noqa: B902 - reported exactly as python would
        # The exception carries its traceback to the printer, which reads it for chained ones.
        error.with_traceback(program_frames(error.__traceback__))
        sys.excepthook(type(error), error, error.__traceback__)
        _interrupted = isinstance(error, KeyboardInterrupt)
        return 1
    return 0


def info():
    import torch

    enabled = torchdevice.is_installed()
    torchdevice.uninstall()  # so torch.cuda answers for the machine, not for the redirect
    available = ["cpu"]
    if torch.cuda.is_available():
        available.append(f"cuda ({torch.cuda.device_count()})")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.append("mps")
    target = torchdevice.install()
    lines = [
        ("torchdevice", f"{torchdevice.__version__} ({os.path.dirname(torchdevice.__file__)})"),
        ("torch", f"{torch.__version__} ({os.path.dirname(torch.__file__)})"),
        ("compiled against", f"torch {torchdevice._C.compiled_torch_version}"),
        ("python", f"{sys.version.split()[0]} ({sys.executable})"),
        ("available devices", ", ".join(available)),
        ("redirected", ", ".join(torchdevice.redirected()) or "nothing (all accelerators exist)"),
        ("target", str(target)),
    ]
    policy, narrowed = torchdevice._C.float64_policy()
    lines.append(("float64 policy", f"{policy} ({', '.join(narrowed) or 'nothing narrowed'})"))
    lines += [("intercepted", hook) for hook in _grouped(torchdevice._C.intercepted())]
    if not enabled:
        torchdevice.uninstall()
        lines.append(("note", "TORCHDEVICE_DISABLE is set: `import torchdevice` installs nothing"))
    width = max(len(name) for name, _ in lines) + 2
    for name, value in lines:
        print(f"{name + ':':<{width}}{value}")
    return 0


def _grouped(hooks):
    """torch.cuda.a, torch.cuda.b -> 'torch.cuda: a, b', one line per owner."""
    owners = {}
    for hook in hooks:
        owner, dot, name = hook.rpartition(".")
        if dot and " " not in hook:
            owners.setdefault(owner, []).append(name)
        else:
            owners[hook] = []
    return [f"{owner}: {', '.join(names)}" if names else owner for owner, names in owners.items()]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else None
    if command == "run":
        return run(argv[1:])
    if command == "info" and len(argv) == 1:
        return info()
    if command == "coverage":
        from torchdevice.coverage import main as coverage_main

        return coverage_main(argv[1:])
    if command == "report":
        from torchdevice.report_view import main as report_main

        return report_main(argv[1:])
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    if command == "--version":
        print(f"{PROG} {torchdevice.__version__}")
        return 0
    problem = "no command given" if command is None else f"unrecognized arguments: {' '.join(argv)}"
    print(f"{USAGE}\n{PROG}: error: {problem}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
