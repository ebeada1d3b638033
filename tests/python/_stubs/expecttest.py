"""Stand-in for the `expecttest` package, which torch.testing._internal.common_utils imports and
Debian 12 does not ship. module_sweep.py puts this folder on sys.path only where the real package
is missing; the module database needs nothing from it beyond these two names."""
import unittest

ACCEPT = False


class TestCase(unittest.TestCase):
    pass
