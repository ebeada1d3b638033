#!/usr/bin/env python3
"""Write the ops whose CUDA kernels skip torchgen's same-device check, one C++ string literal a line.

Usage: gen_device_checks.py PATH/TO/native_functions.yaml OUTPUT

CUDA's generated kernels refuse tensor arguments on two devices, except for the ops that
native_functions.yaml marks `device_check: NoCheck` (TensorIterator's, which allow 0-dim CPU
inputs, and the index ops, whose indices may stay on the CPU). Run at configure time against the
torch being built for, so the stand-in's fallback checks as that version's CUDA does. A text scan:
the yaml needs no parser for two keys, and PyYAML is not everywhere torch is.
"""
import re
import sys
from pathlib import Path


def main():
    yaml, output = map(Path, sys.argv[1:])
    names = []
    for entry in re.split(r"\n(?=- func:)", yaml.read_text()):
        func = re.match(r"- func: ([\w.]+)\(", entry)
        if func and re.search(r"^\s+device_check: NoCheck", entry, re.M):
            name, _, overload = func.group(1).partition(".")
            names.append(f'"aten::{name}.{overload}",' if overload else f'"aten::{name}",')
    if not names:
        sys.exit(f"gen_device_checks.py: no `device_check: NoCheck` entry in {yaml}")
    text = "\n".join(sorted(names)) + "\n"
    if not output.exists() or output.read_text() != text:
        output.write_text(text)


if __name__ == "__main__":
    main()
