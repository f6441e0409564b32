"""The distributions with torch.distributions
`Concrete`, `BinaryConcrete` and their log-space and straight-through forms are
`torch.distributions.Distribution` subclasses: they have `rsample`, `log_prob`, `support`,
argument validation, and work with `torch.distributions.kl_divergence`. The KL between two
binary Concretes of equal temperature has a closed form, registered with `register_kl`; for
Concretes with K > 2 there is none, and `mc_kl` estimates it (unbiased and differentiable).
"""

import torch
from torch.distributions import kl_divergence

from gumbel_softmax.distributions import BinaryConcrete, Concrete, mc_kl

g = torch.Generator().manual_seed(0)

# A batch of 4 Concretes over K = 5 classes at temperature 0.5.
logits = torch.randn(4, 5, generator=g, requires_grad=True)
p = Concrete(0.5, logits=logits)
y = p.rsample((3,), generator=g)  # (3, 4, 5), on the simplex, differentiable in logits
print("sample shape", tuple(y.shape), "rows sum to", y.sum(-1)[0].tolist())
print("log_prob shape", tuple(p.log_prob(y).shape), "support", p.support)

# KL between binary Concretes of equal temperature: the closed form, checked by Monte Carlo.
a = BinaryConcrete(0.7, logits=torch.tensor([0.0, 2.0, -3.0]))
b = BinaryConcrete(0.7, logits=torch.tensor([1.0, 1.0, 1.0]))
closed = kl_divergence(a, b)
# 20 independent estimates of 1000 samples each: their mean and its standard error
estimates = torch.stack([mc_kl(a, b, num_samples=1000, generator=g) for _ in range(20)])
mean, stderr = estimates.mean(0), estimates.std(0) / 20**0.5
print("KL closed form", [round(v, 4) for v in closed.tolist()])
print(
    "KL Monte Carlo",
    [f"{m:.4f} +- {s:.4f}" for m, s in zip(mean.tolist(), stderr.tolist(), strict=True)],
)

# K > 2: torch has no closed form, so mc_kl, whose estimate differentiates through rsample.
q = Concrete(0.5, logits=torch.zeros(4, 5))
kl = mc_kl(p, q, num_samples=1000, generator=g)
kl.sum().backward()
print("KL(p || uniform-logit Concrete) per batch element", [round(v, 3) for v in kl.tolist()])
print("its gradient reaches the logits:", tuple(logits.grad.shape))

# Bad arguments are refused with the argument named.
try:
    Concrete(-1.0, logits=logits)
except ValueError as e:
    print("ValueError:", str(e).splitlines()[0][:100])
