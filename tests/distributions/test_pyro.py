"""The distributions as Pyro sample sites (issue 10, item 5): Pyro scores them as torch does, SVI
trains a relaxed guide with a constrained temperature, and straight-through is used the supported
way (relaxed guide, hard value formed in the model). Pyro is a ``dev`` dependency only."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

pytest.importorskip("pyro")
import pyro
import pyro.optim
from pyro import poutine
from pyro.distributions import Normal
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

import gumbel_softmax as gs
from gumbel_softmax.distributions import (
    BinaryConcrete,
    Concrete,
    ExpConcrete,
    StraightThroughConcrete,
    logistic_kl,
)
from gumbel_softmax.distributions.constraints import positive_finite
from gumbel_softmax.testing import assert_close_mean, assert_mean_less

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


# Pyro calls a site's distribution to sample it; the mixin adds that (and .to_event, .mask, ...),
# as Pyro does for torch's own distributions. This is the README's recipe.
class PyroConcrete(Concrete, TorchDistributionMixin):
    pass


class PyroBinaryConcrete(BinaryConcrete, TorchDistributionMixin):
    pass


class PyroExpConcrete(ExpConcrete, TorchDistributionMixin):
    pass


class PyroStraightThroughConcrete(StraightThroughConcrete, TorchDistributionMixin):
    pass


@pytest.fixture(autouse=True)
def _pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)  # Pyro samples sites with torch's global RNG
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)
    pyro.clear_param_store()


def log_weights(model, guide, *args):
    """Per-particle ``log p(x, z) - log q(z)``: the guide traced, the model replayed on it."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)

    def total(trace):
        return sum(
            site["fn"].log_prob(site["value"])
            for site in trace.nodes.values()
            if site["type"] == "sample"
        )

    return total(model_trace) - total(guide_trace), guide_trace, model_trace


def test_binary_concrete_site_scores_the_closed_form_kl():
    # With no observation, -ELBO = KL(q || p): for binary Concretes of one temperature that is
    # delta coth(delta/2) - 2 per coordinate, delta = logit_q - logit_p (kl.py).
    p_logits, q_logits, tau = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-0.5, 1.0, 2.5]), 0.4

    def model(n):
        with pyro.plate("particles", n):
            pyro.sample("z", PyroBinaryConcrete(tau, logits=p_logits).to_event(1))

    def guide(n):
        with pyro.plate("particles", n):
            pyro.sample("z", PyroBinaryConcrete(tau, logits=q_logits).to_event(1))

    log_w, guide_trace, _ = log_weights(model, guide, 20_000)
    z = guide_trace.nodes["z"]["value"]
    assert z.shape == (20_000, 3) and z.requires_grad is False
    expected = logistic_kl(q_logits - p_logits).sum()
    assert_close_mean(-log_w, expected, false_alarm=1e-3)  # fails wrongly once in 1000 seeds


def _problem():
    means = torch.tensor([[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, -2.0]])
    x = torch.tensor([1.9, 0.1])  # near the third class's mean
    return means, x


def _model(n, straight_through=False, seen=None):
    means, x = _problem()
    with pyro.plate("particles", n):
        z = pyro.sample("z", PyroConcrete(0.5, logits=torch.zeros(4)))
        if straight_through:
            hard = torch.nn.functional.one_hot(z.argmax(-1), 4).to(z.dtype)
            z = gs.straight_through(hard, z)
            if seen is not None:
                seen.append(z.detach())
        pyro.sample("x", Normal(z @ means, 0.5).to_event(1), obs=x)


def _guide(n, straight_through_guide=False):
    logits = pyro.param("q_logits", torch.zeros(4))
    tau = pyro.param("q_tau", torch.tensor(1.0), constraint=positive_finite)
    cls = PyroStraightThroughConcrete if straight_through_guide else PyroConcrete
    with pyro.plate("particles", n):
        pyro.sample("z", cls(tau, logits=logits))


@pytest.mark.parametrize("straight_through", [False, True], ids=["relaxed", "st-in-model"])
def test_svi_trains_a_relaxed_guide_with_a_constrained_temperature(straight_through):
    seen: list[torch.Tensor] = []

    def model(n):
        _model(n, straight_through, seen)

    # The temperature is a constrained parameter: Pyro optimises log(tau) (transform_to).
    _guide(1)
    tau = pyro.get_param_store().get_param("q_tau")
    assert float(tau.unconstrained().detach()) == pytest.approx(0.0)
    before, _, _ = log_weights(model, _guide, 4000)

    svi = SVI(model, _guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step(16) for _ in range(100)]
    assert all(torch.isfinite(torch.tensor(losses)))

    after, _, _ = log_weights(model, _guide, 4000)
    # The ELBO rose: a one-sided Welch test on 4000 fresh particles at the first and last
    # parameters (false-alarm rate 1e-3).
    assert_mean_less(-after.detach(), -before.detach(), level=1e-3)
    logits = pyro.param("q_logits").detach()
    assert int(logits.argmax()) == 2  # the class whose mean is near x
    tau = pyro.param("q_tau").detach()
    assert bool(torch.isfinite(tau) & (tau > 0)) and float(tau) != 1.0
    if straight_through:
        # The likelihood saw one-hot values; the gradient reached the guide through the relaxed z.
        assert all(bool(((s == 0) | (s == 1)).all()) for s in seen)


def test_a_straight_through_guide_scores_the_hard_value():
    # Why the straight-through classes are no Pyro guide: Pyro scores the site's value, which is
    # the hard one-hot, and log_prob at a vertex is the density at the clamped vertex (huge and
    # unrelated to the relaxed sample that produced it), so the ELBO would be wrong.
    _guide(1)
    trace = poutine.trace(_guide).get_trace(500, straight_through_guide=True)
    site = trace.nodes["z"]
    hard = site["value"]
    assert bool(((hard == 0) | (hard == 1)).all())
    relaxed_density = Concrete(1.0, logits=torch.zeros(4))
    relaxed = relaxed_density.sample((500,), generator=torch.Generator().manual_seed(0))
    scored = site["fn"].log_prob(hard).detach()
    assert float(scored.min()) > float(relaxed_density.log_prob(relaxed).max())


def test_readme_pyro_example_runs():
    section = README.read_text().split("## Distributions: `torch.distributions` and Pyro", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README Pyro example", "exec"), scope)
    assert all(torch.isfinite(torch.tensor(scope["losses"])))
    assert set(pyro.get_param_store().keys()) == {"q_logits", "q_tau"}


@pytest.mark.parametrize("cls", [PyroConcrete, PyroExpConcrete])
def test_autoguide_reaches_the_support_through_biject_to(cls):
    # AutoNormal puts a normal on biject_to(support).inv(z): stick-breaking for the simplex of
    # Concrete, log_softmax(w, 0) for the log-simplex of ExpConcrete (constraints.py).
    means, x = _problem()

    def model():
        z = pyro.sample("z", cls(0.5, logits=torch.zeros(4)))
        point = z if cls is PyroConcrete else z.exp()
        pyro.sample("x", Normal(point @ means, 0.5).to_event(1), obs=x)

    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step() for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(losses)))
    z = guide()["z"].detach()
    assert z.shape == (4,) and bool(cls.support.check(z))
