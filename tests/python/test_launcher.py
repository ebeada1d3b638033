"""`torchdevice run`: the program sees what plain python gives it, and every Python child it
starts is activated. Each test runs real interpreters; the launcher is compared with plain python
running the same program."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import torchdevice
from conftest import REPO, requires_cuda_redirect

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))
ACTIVATE_DIR = os.path.join(PACKAGE_ROOT, "torchdevice", "_activate")

# What a program can observe about how it was started.
PROBE = """\
import json, os, sys
import __main__
print(json.dumps({
    "argv": sys.argv, "path": sys.path, "name": __name__, "file": __file__,
    "main_is_module": sys.modules["__main__"] is __main__ and __main__.__dict__ is globals(),
    "spec": getattr(__spec__, "name", None), "cwd": os.getcwd(),
}))
"""


def environment(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT  # where the test suite found torchdevice
    for name in ("TORCHDEVICE_ACTIVATE", "TORCHDEVICE_TARGET", "TORCHDEVICE_LOG_LEVEL",
                 "TORCHDEVICE_DISABLE", "TORCHDEVICE_LOG_FILE"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def python(args, cwd, env=None, timeout=180, **options):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment(env),
                          capture_output=True, text=True, timeout=timeout, **options)


def launch(args, cwd, env=None, timeout=180, **options):
    return python(["-m", "torchdevice", *args], cwd, env, timeout, **options)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_script_sees_what_plain_python_gives_it(tmp_path):
    write(tmp_path / "sub" / "probe.py", PROBE)
    args = ["sub/probe.py", "a", "--target", "-m", "x y"]
    plain = python(args, tmp_path)
    launched = launch(["run", *args], tmp_path)
    assert launched.returncode == plain.returncode == 0, launched.stderr
    assert launched.stderr == ""
    seen, expected = json.loads(launched.stdout), json.loads(plain.stdout)
    assert seen == expected
    assert seen["argv"] == args and seen["path"][0] == str(tmp_path / "sub")


def test_module_sees_what_plain_python_gives_it(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "probe.py", PROBE)
    plain = python(["-m", "pkg.probe", "1", "2"], tmp_path)
    launched = launch(["run", "-m", "pkg.probe", "1", "2"], tmp_path)
    assert launched.returncode == plain.returncode == 0, launched.stderr
    assert json.loads(launched.stdout) == json.loads(plain.stdout)
    assert json.loads(launched.stdout)["spec"] == "pkg.probe"


def test_folder_with_a_main_sees_what_plain_python_gives_it(tmp_path):
    write(tmp_path / "app" / "__main__.py", PROBE)
    plain = python(["app", "x"], tmp_path)
    launched = launch(["run", "app", "x"], tmp_path)
    assert launched.returncode == plain.returncode == 0, launched.stderr
    assert json.loads(launched.stdout) == json.loads(plain.stdout)


def test_program_is_redirected_and_pythonpath_carries_the_activation(tmp_path):
    write(tmp_path / "prog.py", """\
        import os, torch
        print(torch.zeros(1, device="cuda").device.type, os.environ["PYTHONPATH"],
              os.environ["TORCHDEVICE_ACTIVATE"])
    """)
    launched = launch(["run", "prog.py"], tmp_path, {"PYTHONPATH": f"{PACKAGE_ROOT}:/elsewhere"})
    assert launched.returncode == 0, launched.stderr
    device, pythonpath, marker = launched.stdout.split()
    assert device == torchdevice.target().type
    assert pythonpath == os.pathsep.join([ACTIVATE_DIR, PACKAGE_ROOT, "/elsewhere"])
    assert marker == "1"


@pytest.mark.parametrize("code, status", [("import sys; sys.exit(3)", 3),
                                          ("import sys; sys.exit('bye')", 1),
                                          ("raise SystemExit", 0),
                                          ("print('done')", 0)])
def test_exit_status_and_output_match_plain_python(tmp_path, code, status):
    write(tmp_path / "prog.py", code)
    plain = python(["prog.py"], tmp_path)
    launched = launch(["run", "prog.py"], tmp_path)
    assert (launched.returncode, launched.stdout, launched.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert launched.returncode == status


def test_uncaught_exception_traceback_starts_at_the_program(tmp_path):
    write(tmp_path / "helper.py", "def fail():\n    raise ValueError('no good')\n")
    write(tmp_path / "prog.py", """\
        import atexit, helper
        atexit.register(print, "atexit ran")
        try:
            {}["missing"]
        except KeyError:
            helper.fail()
    """)
    plain = python(["prog.py"], tmp_path)
    launched = launch(["run", "prog.py"], tmp_path)
    assert launched.returncode == plain.returncode == 1
    assert launched.stderr == plain.stderr
    assert "ValueError: no good" in launched.stderr and "torchdevice" not in launched.stderr
    assert launched.stdout == plain.stdout == "atexit ran\n"


def test_uncaught_exception_in_a_module_run_with_dash_m(tmp_path):
    write(tmp_path / "failing.py", "raise RuntimeError('from a module')\n")
    plain = python(["-m", "failing"], tmp_path)
    launched = launch(["run", "-m", "failing"], tmp_path)
    assert launched.returncode == plain.returncode == 1
    assert launched.stderr == plain.stderr


def test_ctrl_c_ends_the_program_as_plain_python_does(tmp_path):
    write(tmp_path / "prog.py", """\
        import atexit, os, signal
        atexit.register(print, "atexit ran", flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        import time; time.sleep(30)
    """)
    # As from a terminal: a suite started in the background inherits SIGINT ignored, and Python
    # then keeps it ignored in its children.
    interruptible = {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)}
    plain = python(["prog.py"], tmp_path, **interruptible)
    launched = launch(["run", "prog.py"], tmp_path, **interruptible)
    assert launched.returncode == plain.returncode == -signal.SIGINT
    assert launched.stderr == plain.stderr
    assert "KeyboardInterrupt" in launched.stderr
    assert launched.stdout == plain.stdout == "atexit ran\n"


def test_missing_script_and_module_fail_like_python(tmp_path):
    plain = python(["nowhere.py"], tmp_path)
    launched = launch(["run", "nowhere.py"], tmp_path)
    assert launched.returncode == plain.returncode == 2
    assert launched.stderr.replace("torchdevice:", "") == plain.stderr.split(":", 1)[1]
    plain = python(["-m", "no_such_module_here"], tmp_path)
    launched = launch(["run", "-m", "no_such_module_here"], tmp_path)
    assert launched.returncode == plain.returncode == 1
    assert launched.stderr == plain.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--bogus", "prog.py"], "unrecognized option '--bogus'"),
    (["run", "--target"], "option '--target' needs a value"),
    (["run", "--log-level", "loud", "prog.py"],
     "invalid log level 'loud' (choose from trace, debug, info, warn, error, off)"),
    (["run"], "no script or -m module to run"),
    (["run", "-m"], "-m needs a module name"),
    (["frobnicate"], "unrecognized arguments: frobnicate"),
    ([], "no command given"),
])
def test_usage_errors(tmp_path, args, message):
    launched = launch(args, tmp_path)
    assert launched.returncode == 2
    assert launched.stderr.startswith("usage: torchdevice run")
    assert launched.stderr.endswith(f"torchdevice: error: {message}\n")
    assert launched.stdout == ""


def test_help_lists_the_options(tmp_path):
    launched = launch(["run", "--help"], tmp_path)
    assert launched.returncode == 0
    assert "--target DEVICE" in launched.stdout and "--log-level LEVEL" in launched.stdout


def test_options_reach_the_program_and_its_children(tmp_path):
    write(tmp_path / "prog.py", """\
        import subprocess, sys, torch, torchdevice
        print(torchdevice.target(), flush=True)
        code = "import torch, torchdevice; print(torchdevice.target())"
        subprocess.run([sys.executable, "-c", code], check=True)
    """)
    launched = launch(["run", "--target=cpu", "--log-level", "info", "prog.py"], tmp_path)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.split() == ["cpu", "cpu"]
    # Said once per process at info: the program's and the child's install.
    assert launched.stderr.count("[info] torchdevice: installed:") == 2


CHILDREN = """\
    import multiprocessing as mp, subprocess, sys
    import torch

    def where(queue):
        import torch
        queue.put(torch.zeros(1, device="cuda").device.type)

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            return torch.full((1,), i, device="cuda").device.type == "{target}"

    if __name__ == "__main__":
        for method in ("fork", "spawn", "forkserver"):
            ctx = mp.get_context(method)
            queue = ctx.Queue()
            child = ctx.Process(target=where, args=(queue,))
            child.start()
            print(method, queue.get())
            child.join()
        for method in ("fork", "spawn"):
            loader = torch.utils.data.DataLoader(Data(), batch_size=2, num_workers=2,
                                                 multiprocessing_context=method)
            print("dataloader-" + method, all(bool(b.all()) for b in loader))
        code = ("import sys; print('torch' in sys.modules, end=' '); import torch; "
                "print(torch.zeros(1, device='cuda').device.type)")
        print("subprocess", subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True).stdout.strip())
"""


@requires_cuda_redirect
def test_every_kind_of_python_child_is_activated(tmp_path):
    target = torchdevice.target().type
    write(tmp_path / "prog.py", CHILDREN.format(target=target))
    launched = launch(["run", "prog.py"], tmp_path, timeout=300)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.splitlines() == [
        f"fork {target}", f"spawn {target}", f"forkserver {target}",
        "dataloader-fork True", "dataloader-spawn True",
        # The child did not import torch before it asked: activation waits for torch's import.
        f"subprocess False {target}",
    ]


@requires_cuda_redirect
def test_processes_outside_the_launched_tree_and_opted_out_children_are_untouched(tmp_path):
    code = "import torch; print(torch.cuda.is_available())"
    assert python(["-c", code], tmp_path, {"TORCHDEVICE_DISABLE": "1"}).stdout == "False\n"
    write(tmp_path / "prog.py", f"""\
        import os, subprocess, sys
        env = dict(os.environ, TORCHDEVICE_ACTIVATE="0")
        subprocess.run([sys.executable, "-c", {code!r}], env=env, check=True)
        subprocess.run([sys.executable, "-c", {code!r}], check=True)
    """)
    launched = launch(["run", "prog.py"], tmp_path)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.split() == ["False", "True"]


def test_an_existing_sitecustomize_still_runs_in_children(tmp_path):
    write(tmp_path / "custom" / "sitecustomize.py", "import os\nos.environ['CUSTOM_RAN'] = 'yes'\n")
    write(tmp_path / "prog.py", """\
        import subprocess, sys
        code = ("import os, sys, sitecustomize; print(os.environ.get('CUSTOM_RAN'), "
                "sitecustomize.__file__, any('_activate' in p for p in sys.path))")
        print(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.strip())
    """)
    custom = str(tmp_path / "custom")
    launched = launch(["run", "prog.py"], tmp_path,
                      {"PYTHONPATH": os.pathsep.join([PACKAGE_ROOT, custom])})
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.split() == ["yes", os.path.join(custom, "sitecustomize.py"), "False"]


def test_info_describes_the_machine_and_the_install(tmp_path):
    import torch

    launched = launch(["info"], tmp_path)
    assert launched.returncode == 0, launched.stderr
    fields = dict(line.split(":", 1) for line in launched.stdout.splitlines())
    assert fields["torch"].split()[0] == torch.__version__
    assert fields["compiled against"].strip() == f"torch {torchdevice._C.compiled_torch_version}"
    assert fields["target"].strip() == str(torchdevice.target())
    assert fields["redirected"].strip().split(", ") == torchdevice.redirected()
    if "cuda" in torchdevice.redirected():
        assert "torch.cuda: is_available" in launched.stdout
