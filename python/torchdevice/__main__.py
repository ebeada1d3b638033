"""``python -m torchdevice run SCRIPT [ARGS...]``: run a CUDA-written script through torchdevice.

The script sees what plain ``python SCRIPT ARGS...`` would give it: ``sys.argv``, ``sys.path[0]``
(its folder) and ``__name__ == '__main__'``.
"""

import os
import runpy
import sys

USAGE = "usage: python -m torchdevice run SCRIPT [ARGS...] | coverage [--write PATH]"


def main(argv):
    if argv[:1] == ["coverage"]:
        from torchdevice.coverage import main as coverage_main

        return coverage_main(argv[1:])
    if len(argv) < 2 or argv[0] != "run":
        print(USAGE, file=sys.stderr)
        return 2
    import torchdevice  # installs the redirect before the script imports anything

    script = argv[1]
    if not os.path.isfile(script):
        print(f"torchdevice: no such script: {script}", file=sys.stderr)
        return 2
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
