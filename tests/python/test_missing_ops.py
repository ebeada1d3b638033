"""The CUDA-only error (src/missing_ops.cpp) sits only where nothing on the target could run the
op: never beside a composite kernel, never on a query, never in the way of a plain CPU model."""
import re

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

COMPOSITE = ("CompositeImplicitAutograd", "CompositeExplicitAutograd",
             "CompositeExplicitAutogradNonFunctional")


def kernels(name):
    """{dispatch key: where registered} for `name`, read from torch's own dispatch dump."""
    found = {}
    for line in torch._C._dispatch_dump(name).splitlines():
        match = re.match(r"(\w+)(?:\[\w+\])?: registered at (.*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def target_key():
    """The dispatch key of the target's dense tensors (a PrivateUse1 backend's under its own name)."""
    kind = torchdevice.target().type
    if hasattr(torch._C, "_get_privateuse1_backend_name") and \
            kind == torch._C._get_privateuse1_backend_name():
        return "PrivateUse1"
    return kind.upper()


def served(name, key):
    """Whether torch alone runs `name` for `key`: a kernel there, a composite one, or a backend
    fallback where the CPU has a kernel (accelerators' fallbacks compute with the CPU's)."""
    where = kernels(name)
    return (key in where or bool(set(COMPOSITE) & set(where))
            or (torch._C._dispatch_has_computed_kernel_for_dispatch_key(name, key)
                and torch._C._dispatch_has_computed_kernel_for_dispatch_key(name, "CPU")))


def ops_with_our_error():
    """A grep of the whole dispatcher for torchdevice's error kernel."""
    names = {"aten::" + str(s).split("(")[0].split("aten::")[-1].split(".")[0]
             for s in torch._C._jit_get_all_schemas() if str(s).startswith("aten::")}
    hits = set()
    for name in names:
        for overload in [name] + [name + "." + s.overload_name
                                  for s in torch._C._jit_get_schemas_for_operator(name)
                                  if s.overload_name]:
            try:
                where = kernels(overload)
            except RuntimeError:
                continue
            if any("missing_ops.cpp" in w for w in where.values()):
                hits.add(overload)
    return hits


@requires_cuda_redirect
def test_recurrent_models_run_with_torchdevice_installed():
    torch.manual_seed(0)
    for cls in (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN):
        model = cls(4, 4, num_layers=2, bidirectional=True)
        x = torch.randn(3, 2, 4)
        installed = model(x)[0]
        torchdevice.uninstall()
        try:
            plain = model(x)[0]
        finally:
            torchdevice.install()
        assert torch.equal(installed, plain), cls
        on_cuda = model.cuda()(x.cuda())[0]
        assert on_cuda.device == torchdevice.target()
        if on_cuda.device.type == "cpu":
            assert torch.equal(on_cuda, plain), cls
        else:  # an accelerator's fused cells add the gates in their own order
            torch.testing.assert_close(on_cuda.cpu(), plain, msg=str(cls))


@requires_cuda_redirect
def test_queries_answer_and_never_raise():
    assert torch.cudnn_is_acceptable(torch.ones(2, device="cuda")) is False
    listed = dict(torchdevice._C.missing_ops())
    assert "aten::cudnn_is_acceptable" not in listed
    assert not any(name.startswith("aten::_use_cudnn") for name in listed)


@requires_cuda_redirect
def test_every_listed_op_has_no_kernel_that_could_serve_the_target():
    listed = torchdevice._C.missing_ops()
    assert listed, "the CUDA-only ops (cuDNN, SyncBatchNorm statistics) should be listed"
    key = target_key()
    for name, why in listed:
        where = kernels(name)
        assert "missing_ops.cpp" in where.get(key, ""), (name, where)
        assert not set(COMPOSITE) & set(where), (name, where)
        assert why
    torchdevice.uninstall()
    try:
        for name, _ in listed:
            assert not served(name, key), name
    finally:
        torchdevice.install()


@requires_cuda_redirect
def test_the_dispatcher_holds_our_error_exactly_where_listed():
    assert ops_with_our_error() == {name for name, _ in torchdevice._C.missing_ops()}
    torchdevice.uninstall()
    try:
        assert ops_with_our_error() == set()
    finally:
        torchdevice.install()


@requires_cuda_redirect
def test_a_listed_op_names_itself_and_the_way_out():
    with pytest.raises(NotImplementedError, match="exists only for CUDA.*SyncBatchNorm"):
        torch.batch_norm_stats(torch.ones(2, 3, device="cuda"), 1e-5)


@requires_cuda_redirect
@pytest.mark.skipif(torchdevice.target().type == "cpu",
                    reason="a retarget needs a second target: on the CPU target there is none")
def test_a_retarget_moves_the_error_to_the_new_target_and_off_the_old_one():
    old = target_key()
    torchdevice.install(target="cpu")
    try:
        listed = torchdevice._C.missing_ops()
        assert listed
        for name, _ in listed:
            where = kernels(name)
            assert "missing_ops.cpp" in where.get("CPU", ""), (name, where)
            assert "missing_ops.cpp" not in where.get(old, ""), (name, where)
        with pytest.raises(NotImplementedError, match="exists only for CUDA.*-> cpu"):
            torch.batch_norm_stats(torch.ones(2, 3, device="cuda"), 1e-5)
    finally:
        torchdevice.install()
