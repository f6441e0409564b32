"""Your own objective: comparing estimators with diagnostics
Write any loss `f` of a few categorical variables, compute its exact gradient by enumerating
every state with `gumbel_softmax.diagnostics.exact_gradient`, and measure the bias, variance and
time of registered estimators on it with `gradient_stats`. Everything an estimator declares
(unbiased, binary-only, has a temperature) is read from its class, so the same loop runs over
every name in `estimators.available()`.
"""

import torch

import gumbel_softmax.estimators as est
from gumbel_softmax.diagnostics import exact_gradient, gradient_stats

torch.manual_seed(0)
N, K = 3, 4  # three variables of four classes: 4**3 = 64 states to enumerate
logits = torch.randn(N, K, dtype=torch.float64)
w = torch.randn(N * K, dtype=torch.float64)


def f(z):
    """A non-linear loss of one-hot (or relaxed) z: (*sample, N, K) -> (*sample)."""
    s = z.flatten(-2) @ w
    return torch.sin(s) + 0.1 * s**2


exact = exact_gradient(f, logits)
print("exact gradient norm", f"{exact.norm():.4f}")
print(f"{'estimator':>12}  unbiased  {'bias':>8}  {'variance':>9}  {'cos':>6}  {'us':>6}")
g = torch.Generator().manual_seed(1)
for name in est.available():
    cls = est.estimator_class(name)
    if cls.binary_only:
        continue  # K = 4 here; arm and disarm take K = 2
    options = {"temperature": 1.0} if cls.temperature_kind is not None else {}
    estimator = est.build(name, event_shape=(N, K), **options)
    stats = gradient_stats(estimator, f, logits, num_samples=200, generator=g, exact=exact)
    print(
        f"{name:>12}  {'yes' if cls.unbiased else 'no':>8}  {stats.bias_norm:8.4f}  "
        f"{stats.total_variance:9.4f}  {stats.cosine:6.3f}  "
        f"{stats.seconds_per_estimate * 1e6:6.0f}"
    )
print("bias has sampling noise of about sqrt(variance / 200): compare it with that")
