"""Estimators over two stochastic layers (``gumbel_softmax.graph``) against exact enumeration.

The network: input ``x`` (D = 3) -> logits of layer 1 -> sample ``z1`` -> logits of layer 2 ->
sample ``z2`` -> decoder cost, plus a cost of ``z1`` alone (outside node 2, so that it is in the
learning signal of node 1 only). Two sizes, small enough to enumerate every joint state: 3 + 3
binary units (K = 2, 64 states) and 2 + 2 categorical variables of K = 3 (81 states). The exact
gradient of every parameter (both layers' and the decoder's) comes from differentiating the
enumerated expectation (nested :func:`gumbel_softmax.diagnostics.exact_expectation`).

Driven by the registry: every estimator that declares ``unbiased = True`` is run at both nodes
(one instance per node, built by ``estimators.build``), on both sizes unless it is binary-only,
so an estimator registered later is covered without editing this file. Each estimator is first
moved away from its initial state by a few training-mode passes through the network (Adam on its
own learned parts), then frozen with ``eval()``, and 20 000 independent estimates are drawn in
one batched call: every row of the batch has its own copy of the parameters (leaves of shape
``(n, ...)``), so the gradient of each copy is one draw.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gumbel_softmax import estimators
from gumbel_softmax.diagnostics import exact_expectation
from gumbel_softmax.graph import stochastic_node
from gumbel_softmax.testing import assert_close_mean, assert_mean_differs

N_DRAWS = 20_000
D = 3  # input features
HIDDEN = 4  # decoder hidden units
SIZES = {"binary-3+3": (3, 2), "categorical-2+2-K3": (2, 3)}  # (N per layer, K)
# Unbiased estimators of E f; a multi-sample-bound estimator (VIMCO) is refused by a node.
UNBIASED = [
    n
    for n in estimators.available()
    if estimators.estimator_class(n).unbiased
    and not estimators.estimator_class(n).multi_sample_bound
]
CASES = [
    (name, size)
    for name in UNBIASED
    for size, (_, k) in SIZES.items()
    if k == 2 or not estimators.estimator_class(name).binary_only
]


def _parameters(n: int, k: int) -> dict[str, Tensor]:
    """The network's parameters (float64), fixed by a seed."""
    g = torch.Generator().manual_seed(100 * n + k)

    def r(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    return {
        "w1": r(n * k, D),
        "b1": r(n * k, scale=0.5),
        "w2": r(n * k, n * k, scale=0.8),
        "b2": r(n * k, scale=0.5),
        "v1": r(n * k),  # the cost of z1 alone
        "w3": r(HIDDEN, n * k),
        "b3": r(HIDDEN, scale=0.5),
        "w4": r(HIDDEN, scale=0.7),
    }


def _linear(w: Tensor, b: Tensor, h: Tensor) -> Tensor:
    # h (*s, *batch, I); w (*batch, O, I) or (O, I): every row may have its own copy
    return (w * h.unsqueeze(-2)).sum(-1) + b


class Network:
    """The two-layer network with parameters ``p`` (each of shape ``(*batch, ...)`` or shared)."""

    def __init__(self, p: dict[str, Tensor], n: int, k: int) -> None:
        self.p, self.n, self.k = p, n, k

    def logits1(self, x: Tensor) -> Tensor:
        return _linear(self.p["w1"], self.p["b1"], x).unflatten(-1, (self.n, self.k))

    def logits2(self, z1: Tensor) -> Tensor:
        return _linear(self.p["w2"], self.p["b2"], z1.flatten(-2)).unflatten(-1, (self.n, self.k))

    def cost1(self, z1: Tensor) -> Tensor:
        return torch.sin((z1.flatten(-2) * self.p["v1"]).sum(-1))

    def cost2(self, z2: Tensor) -> Tensor:
        hidden = torch.tanh(_linear(self.p["w3"], self.p["b3"], z2.flatten(-2)))
        return torch.nn.functional.softplus((hidden * self.p["w4"]).sum(-1))

    def exact(self, x: Tensor) -> Tensor:
        """:math:`\\sum_{z_1, z_2} q(z_1)\\,q(z_2 \\mid z_1)\\,[c_1(z_1) + c_2(z_2)]`."""

        def after_z1(z1: Tensor) -> Tensor:
            return self.cost1(z1) + exact_expectation(self.cost2, self.logits2(z1))

        return exact_expectation(after_z1, self.logits1(x))

    def estimate(
        self, est1: estimators.Estimator, est2: estimators.Estimator, x: Tensor, g: torch.Generator
    ) -> Tensor:
        def after_z1(z1: Tensor) -> Tensor:
            return self.cost1(z1) + stochastic_node(est2, self.logits2(z1), self.cost2, generator=g)

        return stochastic_node(est1, self.logits1(x), after_z1, generator=g)


def _x() -> Tensor:
    return torch.tensor([0.5, -1.0, 0.8], dtype=torch.float64)


def _exact_gradient(n: int, k: int) -> dict[str, Tensor]:
    p = {key: v.clone().requires_grad_(True) for key, v in _parameters(n, k).items()}
    grads = torch.autograd.grad(Network(p, n, k).exact(_x()), list(p.values()))
    return dict(zip(p, grads, strict=True))


def _nodes(name: str, n: int, k: int) -> tuple[estimators.Estimator, estimators.Estimator]:
    torch.manual_seed(0)  # the learned parts' initial values (RELAX's network is seeded itself)
    return (estimators.build(name, event_shape=(n, k)), estimators.build(name, event_shape=(n, k)))


def _train(nodes: tuple[estimators.Estimator, ...], n: int, k: int, steps: int = 20) -> None:
    """Training-mode passes (running statistics move), Adam on the estimators' learned parts."""
    learned = [p for est in nodes for p in est.parameters() if p.requires_grad]
    opt = torch.optim.Adam(learned, lr=0.02) if learned else None
    net = Network(_parameters(n, k), n, k)
    g = torch.Generator().manual_seed(7)
    for est in nodes:
        est.train()
    for _ in range(steps):
        out = net.estimate(*nodes, _x().expand(64, D), g)
        if opt is not None:
            opt.zero_grad()
            out.sum().backward()
            opt.step()


def _draws(
    nodes: tuple[estimators.Estimator, ...], n: int, k: int, num: int, seed: int
) -> dict[str, Tensor]:
    """``num`` independent estimates of every parameter's gradient, ``(num, *shape)`` each."""
    rows = {
        key: v.expand(num, *v.shape).clone().requires_grad_(True)
        for key, v in _parameters(n, k).items()
    }
    out = Network(rows, n, k).estimate(
        *nodes, _x().expand(num, D), torch.Generator().manual_seed(seed)
    )
    assert out.shape == (num,)
    grads = torch.autograd.grad(out.sum(), list(rows.values()))
    return {key: grad.detach() for key, grad in zip(rows, grads, strict=True)}


def test_the_cases_cover_the_unbiased_estimators() -> None:
    assert {"sf", "sf-ema", "rloo", "nvil", "muprop", "rebar", "relax", "arm", "disarm"} <= set(
        UNBIASED
    )
    assert {name for name, _ in CASES} == set(UNBIASED)


@pytest.mark.parametrize(("name", "size"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_every_parameter_gets_the_exact_gradient_in_expectation(name: str, size: str) -> None:
    n, k = SIZES[size]
    nodes = _nodes(name, n, k)
    _train(nodes, n, k)
    for est in nodes:
        est.eval()
    draws = _draws(nodes, n, k, N_DRAWS, seed=sum(map(ord, name + size)))
    exact = _exact_gradient(n, k)
    # All coordinates of all parameters at once: false-alarm rate 1e-3 per case, Bonferroni
    # over every coordinate (about 100).
    assert_close_mean(
        torch.cat([draws[key].flatten(1) for key in exact], 1),
        torch.cat([exact[key].flatten() for key in exact]),
        false_alarm=1e-3,
    )


MIXED = [(name, "muprop") for name in UNBIASED if name != "muprop"]
MIXED += [("muprop", name) for name in UNBIASED if name != "muprop"]


@pytest.mark.parametrize(("first", "second"), MIXED, ids=[f"{a}-then-{b}" for a, b in MIXED])
def test_different_estimators_at_the_two_nodes(first: str, second: str) -> None:
    # Each unbiased estimator above and below MuProp (whose Taylor term goes through the other
    # node), on the binary network (every estimator takes K = 2); false-alarm rate 1e-3 per case.
    n, k = SIZES["binary-3+3"]
    torch.manual_seed(0)
    nodes = (
        estimators.build(first, event_shape=(n, k)),
        estimators.build(second, event_shape=(n, k)),
    )
    for est in nodes:
        est.eval()
    draws = _draws(nodes, n, k, N_DRAWS, seed=sum(map(ord, first + second)))
    exact = _exact_gradient(n, k)
    assert_close_mean(
        torch.cat([draws[key].flatten(1) for key in exact], 1),
        torch.cat([exact[key].flatten() for key in exact]),
        false_alarm=1e-3,
    )


def test_a_biased_estimator_is_caught() -> None:
    # The power of the test above: DARN (declared biased) at both nodes differs detectably
    # from the exact gradient (the chance of passing without a bias is at most 1e-3).
    n, k = SIZES["binary-3+3"]
    nodes = _nodes("darn", n, k)
    for est in nodes:
        est.eval()
    draws = _draws(nodes, n, k, N_DRAWS, seed=3)
    exact = _exact_gradient(n, k)
    assert_mean_differs(
        torch.cat([draws[key].flatten(1) for key in exact], 1),
        torch.cat([exact[key].flatten() for key in exact]),
        level=1e-3,
    )


def test_the_value_is_the_sampled_cost() -> None:
    # sf's surrogate adds f * log q; the node's value is the cost itself, and its mean is the
    # exact expected cost (z-test, false-alarm rate 1e-3).
    n, k = SIZES["categorical-2+2-K3"]
    net = Network(_parameters(n, k), n, k)
    nodes = _nodes("sf", n, k)
    out = net.estimate(*nodes, _x().expand(N_DRAWS, D), torch.Generator().manual_seed(5))
    assert_close_mean(out.detach(), float(net.exact(_x())), false_alarm=1e-3)


def test_pathwise_nodes_pass_the_relaxed_sample_downstream() -> None:
    # gs at node 1: layer 2 reads the relaxed z1, so its logits are off the one-hot lattice, and
    # the gradient of layer 1 flows through layer 2 (it is zero without a path through z1).
    n, k = SIZES["categorical-2+2-K3"]
    seen: list[Tensor] = []
    net = Network({key: v.requires_grad_(True) for key, v in _parameters(n, k).items()}, n, k)
    gs = estimators.build("gs", event_shape=(n, k), temperature=1.0)
    sf = estimators.build("sf", event_shape=(n, k))
    g = torch.Generator().manual_seed(0)

    def after_z1(z1: Tensor) -> Tensor:
        seen.append(z1.detach())
        return stochastic_node(sf, net.logits2(z1), net.cost2, generator=g)

    out = stochastic_node(gs, net.logits1(_x().expand(8, D)), after_z1, generator=g)
    (z1,) = seen
    assert not torch.equal(z1, z1.round())  # relaxed, not one-hot
    (grad,) = torch.autograd.grad(out.sum(), net.p["w1"])
    assert grad.abs().sum() > 0


def test_bad_estimator_is_refused_by_name() -> None:
    with pytest.raises(
        TypeError, match=r"estimator must be a gumbel_softmax\.estimators\.Estimator"
    ):
        stochastic_node("sf", torch.zeros(2, 3), lambda z: z.sum((-1, -2)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="f must be a callable"):
        stochastic_node(estimators.get("sf"), torch.zeros(2, 3), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes no context"):
        stochastic_node(
            estimators.get("sf"),
            torch.zeros(2, 3),
            lambda z: z.sum((-1, -2)),
            context=torch.ones(1),
        )


def _readme_example() -> str:
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    section = readme.read_text().split("## Several stochastic layers", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


NODE_ESTIMATORS = [
    n for n in estimators.available() if not estimators.estimator_class(n).multi_sample_bound
]


@pytest.mark.parametrize("name", NODE_ESTIMATORS)
def test_readme_example_runs_for_every_estimator_a_node_takes(name: str) -> None:
    code = _readme_example()
    assert 'name = "muprop"' in code
    scope: dict = {}
    exec(compile(code.replace('name = "muprop"', f"name = {name!r}"), "README", "exec"), scope)
    assert scope["cost"].shape == (32,)
    for module in ("layer1", "layer2", "out"):
        for p in scope[module].parameters():
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), (name, module)


def test_a_multi_sample_bound_estimator_is_refused_by_its_declaration() -> None:
    for name in estimators.available():
        if estimators.estimator_class(name).multi_sample_bound:
            est = estimators.build(name, event_shape=(2, 3))
            with pytest.raises(ValueError, match="multi-sample bound"):
                stochastic_node(est, torch.zeros(2, 3), lambda z: z.sum((-2, -1)))
