"""The distributions in a Pyro model
Pyro's `pyro.sample` calls a distribution to draw from it, which Pyro's own distributions can do
through `TorchDistributionMixin`; mixing it into `Concrete` makes ours usable in a Pyro model
and guide, reparameterised (`rsample`), so `Trace_ELBO` differentiates through the sample. The
model below has one relaxed categorical latent with a uniform Concrete prior and a Gaussian
likelihood whose mean is the latent's expected value on a grid; stochastic variational inference
learns the guide's logits, which should put the mass on the class that explains the data.
"""

# requires: pyro (pip install pyro-ppl)

import pyro
import pyro.distributions as pdist
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.infer import SVI, Trace_ELBO

from gumbel_softmax.distributions import Concrete


class PyroConcrete(Concrete, TorchDistributionMixin):
    """Our Concrete, callable by pyro.sample (the mixin adds __call__, expand, to_event, ...)."""


pyro.set_rng_seed(0)
K, tau = 5, 0.5
centres = torch.linspace(-2.0, 2.0, K)  # the mean each class predicts
data = 1.0 + 0.3 * torch.randn(200)  # generated near class 3's centre, 1.0


def model(data):
    z = pyro.sample("z", PyroConcrete(tau, logits=torch.zeros(K)))
    with pyro.plate("data", len(data)):
        pyro.sample("x", pdist.Normal((z * centres).sum(), 0.3), obs=data)


def guide(data):
    logits = pyro.param("logits", torch.zeros(K))
    pyro.sample("z", PyroConcrete(tau, logits=logits))


svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), loss=Trace_ELBO())
losses = []
for step in range(1, 301):
    losses.append(svi.step(data))  # one-sample estimates of -ELBO: noisy, so averaged
    if step % 100 == 0:
        print(f"steps {step - 99:3d}-{step}  mean -ELBO {sum(losses[-100:]) / 100:9.1f}")
probs = torch.softmax(pyro.param("logits").detach(), -1)
print("guide's class probabilities", [round(p, 3) for p in probs.tolist()])
print("most probable class", int(probs.argmax()), "with centre", float(centres[probs.argmax()]))
