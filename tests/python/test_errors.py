"""Errors user code written for CUDA catches."""

import pytest
import torch

from conftest import requires_cuda_redirect

OutOfMemoryError = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
HUGE = 2**50  # elements: petabytes, past any address space


@requires_cuda_redirect
@pytest.mark.parametrize("call", [
    lambda: torch.empty(HUGE, device="cuda"),
    lambda: torch.zeros(HUGE, dtype=torch.uint8, device="cuda:1"),
    lambda: torch.empty_strided((HUGE,), (1,), device="cuda"),
    lambda: torch.ones(1).new_empty(HUGE, device="cuda"),
])
def test_out_of_memory_on_the_target_is_cudas_out_of_memory_error(call, target):
    with pytest.raises(OutOfMemoryError) as raised:
        call()
    assert isinstance(raised.value, RuntimeError)
    message = str(raised.value)
    assert f"Out of memory on {target}" in message and "cuda" in message


def test_out_of_memory_that_is_not_redirected_is_unchanged():
    with pytest.raises(RuntimeError) as raised:
        torch.empty(HUGE)
    assert type(raised.value) is RuntimeError
