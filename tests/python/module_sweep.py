"""Every entry of torch's own module database (torch.testing._internal.common_modules.module_db):
its float32 training samples built on a device, each module constructed, run forward and
backward; the outputs, the input and parameter gradients and the buffers saved for comparison.

    python module_sweep.py --device cpu OUT.pt                  # plain torch
    python module_sweep.py --device cuda --torchdevice OUT.pt   # redirected by torchdevice

Every sample is drawn from the CPU generator after the same seed in both runs (make_tensor on a
redirected 'cuda' draws there too). One intra-op thread, as in zoo.py.
"""
import argparse
import importlib.util
import os
import sys

import torch

STUBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_stubs")


def flatten(value):
    """The tensors in a (nested) output, in order; PackedSequence is a tuple too."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in flatten(item)]
    if isinstance(value, dict):
        return [t for key in sorted(value) for t in flatten(value[key])]
    return []


def run_sample(info, sample, device):
    constructor, forward = sample.constructor_input, sample.forward_input
    module = info.module_cls(*constructor.args, **constructor.kwargs)
    module.to(device).to(torch.float32)
    module.train(True)
    inputs = flatten((forward.args, forward.kwargs))
    outputs = flatten(module(*forward.args, **forward.kwargs))
    found = {f"output.{i}": t for i, t in enumerate(outputs)}
    differentiable = [t for t in outputs if t.requires_grad]
    if differentiable:
        sum(t.sum() for t in differentiable).backward()
    for i, t in enumerate(inputs):
        if t.grad is not None:
            found[f"input_grad.{i}"] = t.grad
    for name, parameter in module.named_parameters():
        found[f"param.{name}"] = parameter
        if parameter.grad is not None:
            found[f"param_grad.{name}"] = parameter.grad
    for name, buffer in module.named_buffers():
        found[f"buffer.{name}"] = buffer
    devices = sorted({t.device.type for t in found.values()})
    return {"tensors": {k: t.detach().cpu().clone() for k, t in found.items()}, "devices": devices}


def sweep(info, device):
    torch.manual_seed(0)
    try:
        samples = list(info.module_inputs_func(info, device=device, dtype=torch.float32,
                                               requires_grad=True, training=True))
    except Exception as error:
        return {"error": f"samples: {type(error).__name__}: {error}"}
    results = []
    for i, sample in enumerate(samples):
        torch.manual_seed(i)
        try:
            results.append(run_sample(info, sample, device))
        except Exception as error:
            results.append({"error": f"{type(error).__name__}: {error}"})
        results[-1]["desc"] = sample.desc
    return {"samples": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torchdevice", action="store_true", help="import torchdevice first")
    parser.add_argument("out")
    args = parser.parse_args()
    if args.torchdevice:
        import torchdevice  # noqa: F401
    if importlib.util.find_spec("expecttest") is None:
        sys.path.insert(0, STUBS)
    from torch.testing._internal.common_modules import module_db
    torch.set_num_threads(1)
    results = {}
    for info in module_db:
        name, n = info.formatted_name, 1
        while name in results:  # one module class may have several entries
            n += 1
            name = f"{info.formatted_name}#{n}"
        results[name] = sweep(info, args.device)
    torch.save({"modules": results, "torch": str(torch.__version__),
                "torchdevice": "torchdevice" in sys.modules}, args.out)


if __name__ == "__main__":
    main()
