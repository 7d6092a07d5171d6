"""`CompiledOrEager`: opt-in torch.compile that falls back to eager when the forward or the
backward fails to compile, with the gradients of eager training."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from torch import nn
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_func

from salt.training.compile import CompiledOrEager, compile_options

FAILED = (
    r"torch\.compile\(backend=.*\) failed \(RuntimeError: no backward here\); running without it"
)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Every test compiles afresh: dynamo reuses graphs across instances of `Net`, and stops
    compiling a function after a few recompiles."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Net(nn.Module):
    """A dict of logits as SaltNet returns, BatchNorm statistics, and dropout (random)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv2d(4, 1, 1)
        self.classifier = nn.Linear(4, 1)

    def forward(self, x):
        features = self.dropout(torch.relu(self.bn(self.conv(x))))
        return {"mask": self.head(features), "salt_logit": self.classifier(features.mean((2, 3)))}


def backend(fail_from: int | None = None):
    """An AOTAutograd backend that runs the traced graphs as they are; its `fail_from`th backward
    compilation and those after it raise. Returns it and its counts of compilations."""
    compiles = {"forward": 0, "backward": 0}

    def forward_compiler(graph, example_inputs):
        compiles["forward"] += 1
        return make_boxed_func(graph)

    def backward_compiler(graph, example_inputs):
        compiles["backward"] += 1
        if fail_from is not None and compiles["backward"] >= fail_from:
            raise RuntimeError("no backward here")
        return make_boxed_func(graph)

    return aot_autograd(fw_compiler=forward_compiler, bw_compiler=backward_compiler), compiles


def batches(*sizes: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(n, 1, 8, 8, generator=generator) for n in sizes]


def train(call, net: nn.Module, images: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """SGD steps on `images` through `call`; the gradients of each step."""
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    gradients = []
    for x in images:
        outputs = call(x)
        loss = outputs["mask"].square().mean() + outputs["salt_logit"].mean()
        optimizer.zero_grad()
        loss.backward()
        gradients.append([p.grad.clone() for p in net.parameters()])
        optimizer.step()
    return gradients


def assert_trained_as_eager(net: nn.Module, gradients, reference: nn.Module, images) -> None:
    """The same gradients at every step, parameters and buffers (BatchNorm statistics, their
    batch count) as `reference` trained eagerly."""
    torch.testing.assert_close(gradients, train(reference, reference, images))
    torch.testing.assert_close(net.state_dict(), reference.state_dict())


def compile_warnings(record) -> list[str]:
    return [str(w.message) for w in record if str(w.message).startswith("torch.compile(")]


@pytest.fixture
def probes(monkeypatch) -> list[int]:
    """One entry per backward probe."""
    seen: list[int] = []
    original = CompiledOrEager._probe_backward

    def counted(self, outputs, inputs):
        seen.append(1)
        return original(self, outputs, inputs)

    monkeypatch.setattr(CompiledOrEager, "_probe_backward", counted)
    return seen


def test_compile_settings():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options(True) == {}
    assert compile_options({"mode": "reduce-overhead"}) == {"mode": "reduce-overhead"}
    with pytest.raises(ValueError, match="module.compile"):
        compile_options("yes")


@pytest.mark.parametrize("grad", [True, False])
def test_compile_failure_falls_back_to_eager_with_a_warning(grad):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler here")

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    images = torch.randn(2, 1, 8, 8)
    call = CompiledOrEager(net, backend=broken_backend)
    with (
        torch.set_grad_enabled(grad),
        pytest.warns(RuntimeWarning, match="torch.compile.* failed .*no compiler here"),
    ):
        output = call(images)
    assert not call.active
    torch.testing.assert_close(output, net(images))
    with pytest.warns(RuntimeWarning, match="failed"):
        assert not CompiledOrEager(net, mode="no-such-mode").active


def test_a_backward_that_fails_to_compile_falls_back_with_eager_gradients():
    """The forward compiles, the backward does not (compiled at the first backward, outside the
    forward call): one warning on the first call, then every step, that one included, has
    eager's gradients; the probe's BatchNorm update and dropout draws are undone."""
    net = Net(dropout=0.5)
    reference = copy.deepcopy(net)
    broken, compiles = backend(fail_from=1)
    call = CompiledOrEager(net, backend=broken)
    images = batches(4, 4, 4)
    with pytest.warns(RuntimeWarning, match=FAILED) as record:
        gradients = train(call, net, images)
    assert len(compile_warnings(record)) == 1
    assert not call.active and compiles["backward"] >= 1
    assert_trained_as_eager(net, gradients, reference, images)


def test_a_backward_that_fails_on_a_later_batch_size_falls_back_at_that_step():
    """The backward of the first batch size compiles, that of the partial last batch (a new
    graph) fails: the fallback happens at that step, with eager's gradients throughout."""
    net = Net(dropout=0.5)
    reference = copy.deepcopy(net)
    broken, compiles = backend(fail_from=2)
    call = CompiledOrEager(net, backend=broken)
    images = batches(4, 4, 3, 3)
    with pytest.warns(RuntimeWarning, match=FAILED) as record:
        gradients = train(call, net, images[:2])
        assert call.active and not compile_warnings(record)
        gradients += train(call, net, images[2:])
    assert len(compile_warnings(record)) == 1
    assert not call.active
    # `train` reseeds per call: the reference in the same two calls
    expected = train(reference, reference, images[:2]) + train(reference, reference, images[2:])
    torch.testing.assert_close(gradients, expected)
    torch.testing.assert_close(net.state_dict(), reference.state_dict())


def test_a_working_compile_stays_compiled_probing_once_per_batch_size(probes):
    """No failure: compiled throughout, eager's gradients and BatchNorm statistics (the probe's
    update undone), one probe for each new batch size only, none without grad."""
    net = Net()
    reference = copy.deepcopy(net)
    working, compiles = backend()
    call = CompiledOrEager(net, backend=working)
    images = batches(4, 4, 4, 3, 3)
    gradients = train(call, net, images)
    assert call.active and compiles["backward"] >= 1
    assert len(probes) == 2
    assert_trained_as_eager(net, gradients, reference, images)
    with torch.no_grad():
        net.eval()
        reference.eval()
        torch.testing.assert_close(call(images[0]), reference(images[0]))
    assert len(probes) == 2


def test_a_call_that_recompiles_is_probed_even_for_known_inputs(probes):
    """A call that compiles a graph again for inputs already seen (here: after dynamo forgot its
    graphs) is probed too."""
    net = Net()
    call = CompiledOrEager(net, backend=backend()[0])
    (x,) = batches(4)
    call(x)
    call(x)
    assert len(probes) == 1
    torch._dynamo.reset()
    call(x)
    assert len(probes) == 2 and call.active


def test_a_second_net_reusing_the_graphs_of_the_first_is_probed_too():
    """Dynamo reuses the first net's forward graph for another net of its class (a new trial
    in the same process): nothing compiles on its first call, and still its backward, which
    fails to compile, is checked there."""
    broken, _ = backend(fail_from=1)
    images = batches(4)
    first = Net()
    with pytest.warns(RuntimeWarning, match=FAILED):
        train(CompiledOrEager(first, backend=broken), first, images)
    net = Net()
    reference = copy.deepcopy(net)
    call = CompiledOrEager(net, backend=broken)
    with pytest.warns(RuntimeWarning, match=FAILED) as record:
        gradients = train(call, net, images)
    assert len(compile_warnings(record)) == 1 and not call.active
    assert_trained_as_eager(net, gradients, reference, images)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler"
)
def test_the_default_inductor_backend_trains_as_eager():
    """The real backend (C++ code on CPU): compiled, and close to eager's gradients."""
    net = Net()
    reference = copy.deepcopy(net)
    call = CompiledOrEager(net)
    images = batches(4, 4)
    gradients = train(call, net, images)
    assert call.active
    torch.testing.assert_close(gradients, train(reference, reference, images), atol=1e-5, rtol=1e-4)
