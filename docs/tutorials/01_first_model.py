"""A first model with discrete latents
A mixture model with one categorical latent, trained end to end with straight-through
Gumbel-Softmax. The data are 16-pixel binary images drawn from four hidden prototypes; an encoder
maps an image to logits over K = 4 clusters, a one-hot sample picks a decoder prototype, and the
negative ELBO (reconstruction + KL to a uniform prior) is minimised with Adam while the
temperature is annealed. At the end, the learnt clusters are compared with the hidden ones.
"""

import math

import torch
from torch import nn

import gumbel_softmax as gs

torch.manual_seed(0)  # the model's initial weights
g = torch.Generator().manual_seed(0)  # every sample below draws from this generator

# Data: four prototypes of 16 pixels; each image flips every pixel with probability 0.05.
K, D, n = 4, 16, 2000
prototypes = torch.bernoulli(torch.full((K, D), 0.5), generator=g)
labels = torch.randint(K, (n,), generator=g)
flips = torch.bernoulli(torch.full((n, D), 0.05), generator=g)
x = (prototypes[labels] + flips) % 2

encoder = nn.Sequential(nn.Linear(D, 32), nn.Tanh(), nn.Linear(32, K))
decoder = nn.Linear(K, D)  # one-hot z -> the logits of its prototype's pixels
opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-2)
schedule = gs.ExponentialAnneal(tau0=1.0, rate=1e-2, tau_min=0.5, every=10)

for step in range(301):
    batch = x[torch.randint(n, (100,), generator=g)]
    logits = encoder(batch)  # (100, K)
    # one-hot forward, the relaxed sample's gradient backward
    z = gs.gumbel_softmax(logits, schedule(step), hard=True, generator=g)
    bce = nn.functional.binary_cross_entropy_with_logits(decoder(z), batch, reduction="none")
    recon = bce.sum(-1)  # -log p(x | z), summed over the 16 pixels
    log_q = torch.log_softmax(logits, -1)
    kl = (log_q.exp() * (log_q + math.log(K))).sum(-1)  # KL(q(z|x) || uniform), exactly
    loss = (recon + kl).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step:3d}  tau {schedule(step):.3f}  -ELBO {loss.item():6.2f} nats")

# Which hidden prototype does each learnt cluster hold? Purity 1 means a perfect match.
with torch.no_grad():
    clusters = encoder(x).argmax(-1)
counts = torch.zeros(K, K)
counts.index_put_((clusters, labels), torch.ones(n), accumulate=True)
purity = counts.max(1).values.sum() / n
print(f"cluster purity {purity:.3f} (chance: about {1 / K:.2f})")
