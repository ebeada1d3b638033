import sys; sys.path.insert(0, "tests/python")
import torch, torchdevice
import test_graphs
for f in (test_graphs.test_make_graphed_callables_forward_and_backward_match_eager, test_graphs.test_mlp_forward_backward_and_sgd_step_match_eager):
    try:
        f(); print(f.__name__, "ok")
    except AssertionError as e:
        print(f.__name__, "FAIL", str(e)[:200])
