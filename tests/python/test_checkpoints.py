"""torch.load of checkpoints saved on CUDA (storages tagged cuda:0 / cuda:1) restores them on the
target bit-exact, whatever map_location says; what is saved while redirected loads without
torchdevice. The fixtures are real torch.save files made by tests/fixtures/make_checkpoints.py."""

import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

import torchdevice
from conftest import REPO, redirected_dtype, requires_cuda_redirect, target_refuses

pytestmark = requires_cuda_redirect

FIXTURES = os.path.join(REPO, "tests", "fixtures")
sys.path.insert(0, FIXTURES)
import make_checkpoints  # noqa: E402

TORCH2 = int(torch.__version__.split(".")[0]) >= 2

MAP_LOCATIONS = {
    "none": None,
    "'cuda'": "cuda",
    "'cuda:1'": "cuda:1",
    "device('cuda')": torch.device("cuda"),
    "dict": {"cuda:0": "cuda:1", "cuda:1": "cuda:0"},
    "callable-cuda": lambda storage, location: storage.cuda(),
    "callable-none": lambda storage, location: None,  # torch's default restore then
}


def raw(tensor):
    """The bytes of a tensor: equal only when bit-exact (NaN payloads and -0.0 included)."""
    return tensor.contiguous().view(torch.uint8) if tensor.dtype != torch.bool else tensor


def storage_ptr(tensor):
    storage = tensor.untyped_storage() if hasattr(tensor, "untyped_storage") else tensor.storage()
    return storage.data_ptr()


REFUSES_BF16 = target_refuses(torch.bfloat16)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """The shipped files; where the target has no bfloat16, the state files rewritten without
    their bfloat16 entry (as make_checkpoints.py writes them): the shipped ones cannot load there
    (test_a_bfloat16_checkpoint_is_refused_in_the_targets_own_words)."""
    if not REFUSES_BF16:
        return FIXTURES
    directory = tmp_path_factory.mktemp("fixtures")
    for name, (location, make) in make_checkpoints.FILES.items():
        value = make()
        if isinstance(value, dict):
            value.pop("bfloat16")
        with make_checkpoints.tagged(location):
            torch.save(value, os.path.join(directory, name))
    return str(directory)


def load(name, directory=FIXTURES, **kwargs):
    return torch.load(os.path.join(directory, name), **kwargs)


def assert_state(loaded, target):
    expected = {key: value.to(redirected_dtype(value.dtype))
                for key, value in make_checkpoints.state().items()
                if not (REFUSES_BF16 and value.dtype == torch.bfloat16)}
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert loaded[key].device == target, key
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        assert torch.equal(raw(loaded[key].cpu()), raw(value)), key
    # Saved once, restored once: the view still shares its base's storage.
    assert storage_ptr(loaded["view"]) == storage_ptr(loaded["float32"])


@pytest.mark.parametrize("name", ["state_cuda0.pt", "state_cuda1.pt"])
@pytest.mark.parametrize("map_location", MAP_LOCATIONS.values(), ids=MAP_LOCATIONS.keys())
@pytest.mark.parametrize("weights_only", [None, False, True], ids=lambda w: f"weights_only={w}")
def test_cuda_state_loads_bit_exact_on_the_target(name, map_location, weights_only, target,
                                                   fixtures):
    kwargs = {} if weights_only is None else {"weights_only": weights_only}
    assert_state(load(name, fixtures, map_location=map_location, **kwargs), target)


@pytest.mark.skipif(not REFUSES_BF16, reason="the target has bfloat16")
@pytest.mark.parametrize("map_location", [None, "cuda"])
def test_a_bfloat16_checkpoint_is_refused_in_the_targets_own_words(map_location):
    """A dtype the target lacks is not converted behind the user's back (only float64 has a
    policy): torch.load fails as it does with map_location set to the target itself."""
    with pytest.raises((RuntimeError, TypeError), match="BFloat16") as redirected:
        load("state_cuda0.pt", map_location=map_location)
    with pytest.raises(type(redirected.value), match="BFloat16") as direct:
        load("state_cuda0.pt", map_location=torchdevice.target())
    assert str(redirected.value) == str(direct.value)


@pytest.mark.parametrize("map_location", MAP_LOCATIONS.values(), ids=MAP_LOCATIONS.keys())
def test_whole_pickled_cuda_module_loads_on_the_target(map_location, target):
    net = load("module_cuda0.pt", map_location=map_location, weights_only=False)
    expected = make_checkpoints.module()
    assert type(net) is torch.nn.Sequential
    for (name, got), (_, want) in zip(net.state_dict().items(), expected.state_dict().items()):
        assert got.device == target, name
        assert torch.equal(raw(got.cpu()), raw(want)), name
    x = torch.tensor([[1.0, -2.0, 0.5]], device="cuda")
    assert torch.equal(net(x).cpu(), expected(x.cpu()))


@pytest.mark.skipif(not TORCH2, reason="torch >= 2 defaults to weights_only=True")
def test_a_whole_module_is_still_refused_by_the_weights_only_default():
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        load("module_cuda0.pt")


@pytest.mark.parametrize("name", ["state_cuda0.pt", "state_cuda1.pt", "module_cuda0.pt"])
def test_fixtures_record_cuda_locations(name):
    location = "cuda:1" if "cuda1" in name else "cuda:0"
    with zipfile.ZipFile(os.path.join(FIXTURES, name)) as archive:
        (pkl,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        data = archive.read(pkl)
    assert location.encode() in data
    assert b"cpu" not in data


def test_the_generator_writes_cuda_tagged_files(tmp_path):
    """Run as documented, without torchdevice: the files it writes load as the shipped ones do."""
    subprocess.run(
        [sys.executable, os.path.join(FIXTURES, "make_checkpoints.py"), str(tmp_path)],
        check=True, capture_output=True, timeout=120,
    )
    for name in make_checkpoints.FILES:
        fresh = torch.load(tmp_path / name, map_location="cpu", weights_only=False)
        shipped = load(name, map_location="cpu", weights_only=False)
        if isinstance(fresh, dict):
            assert all(torch.equal(raw(fresh[k]), raw(shipped[k])) for k in shipped)
    if not REFUSES_BF16:
        assert_state(torch.load(tmp_path / "state_cuda1.pt"), torchdevice.target())


def test_redirected_tensors_saved_here_load_without_torchdevice(tmp_path, target):
    path = tmp_path / "saved.pt"
    saved = {"w": torch.randn(4, device="cuda"), "net": torch.nn.Linear(2, 2).cuda().state_dict()}
    torch.save(saved, path)
    code = (
        "import sys, torch\n"
        "assert 'torchdevice' not in sys.modules\n"
        f"s = torch.load({str(path)!r})\n"
        "print(s['w'].device, [v.hex() for v in s['w'].tolist()])\n"
    )
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    device, values = out.stdout.split(" ", 1)
    assert device == str(target)
    assert values.strip() == str([v.hex() for v in saved["w"].tolist()])


def test_saving_is_untouched_so_files_carry_the_targets_own_tag(tmp_path, target):
    """Saving is torch's own: storages are tagged with the target's location ('mps', 'standin:0',
    'cpu'), never 'cuda'. Where that device is missing, torch's map_location loads the file."""
    path = tmp_path / "saved.pt"
    w = torch.randn(4, device="cuda")
    torch.save({"w": w}, path)
    tags = set()
    torch.load(path, map_location=lambda storage, location: tags.add(location) or storage)
    storage = w.untyped_storage() if hasattr(w, "untyped_storage") else w.storage()
    assert tags == {torch.serialization.location_tag(storage)}
    assert tags.pop().split(":")[0] == target.type

    def load_elsewhere(map_location):
        # No torchdevice, and no stand-in accelerator: a machine without the target's device.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHDEVICE")}
        env["PYTHONPATH"] = ""
        code = (f"import torch; s = torch.load({str(path)!r}, map_location={map_location!r})\n"
                "print(s['w'].device, [v.hex() for v in s['w'].tolist()])")
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)

    moved = load_elsewhere("cpu")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.split(" ", 1)[1].strip() == str([v.hex() for v in w.tolist()])
    if target.type != "cpu":
        assert load_elsewhere(None).returncode != 0  # the documented limit: the tag is the target's


def test_uninstall_gives_torch_its_own_restore_back():
    registry = list(torch.serialization._package_registry)
    torchdevice.uninstall()
    try:
        assert len(torch.serialization._package_registry) == len(registry) - 1
        with pytest.raises(RuntimeError, match="CUDA"):
            load("state_cuda0.pt")
    finally:
        torchdevice.install()
    assert [e[0] for e in torch.serialization._package_registry] == [e[0] for e in registry]
