r"""Several stochastic layers: any registered estimator at each node of a model written in PyTorch.

A model with stochastic nodes :math:`z_1 \to z_2 \to \dots` (the logits of each node depend on
the samples before it) is written as nested *downstream* functions, one per node: the function
of node :math:`i` receives its sample :math:`z_i` and returns the costs that depend on it, which
includes calling the next node. :func:`stochastic_node` draws the node's sample with its
estimator and returns a tensor whose value is the sampled downstream cost and whose gradient is
the estimator's. A two-layer network reads top to bottom::

    def loss(x, y):
        def after_h1(h1):                       # costs downstream of h1
            def after_h2(h2):                   # costs downstream of h2
                return -log_p(y, decoder(h2))
            return stochastic_node(est2, layer2(h1), after_h2, generator=g)
        return stochastic_node(est1, layer1(x), after_h1, generator=g)

    loss(x, y).mean().backward()                # every parameter gets its estimate

Credit assignment (Schulman, Heess, Weber & Abbeel 2015, arXiv:1506.05254, Theorem 1): with
costs :math:`c` and stochastic nodes :math:`z_i \sim q_{\theta_i}(\cdot \mid \mathrm{parents})`,

.. math:: \nabla_\theta\,\mathbb E\Big[\sum_c c\Big] = \mathbb E\Big[\sum_i
          \nabla_\theta \log q_{\theta_i}(z_i \mid \cdot)\,\hat Q_i
          + \sum_c \nabla_\theta c\Big],
          \qquad \hat Q_i = \sum_{c \text{ downstream of } z_i} c ,

so the learning signal of node :math:`i` is the sum of the costs downstream of it. Nesting gives
exactly that: the ``f`` that node :math:`i`'s estimator sees is its downstream function, whose
value is :math:`\hat Q_i` (costs that do not depend on :math:`z_i` are added outside it, and never
enter its signal), and whose gradient for the parameters and for :math:`z_i` is the downstream
nodes' own estimate. What each estimator does with it:

* score-function estimators (``sf``, ``sf-ema``, ``rloo``, ``nvil``, ``arm``, ...) weight
  :math:`\nabla\log q_i(z_i)` by :math:`\hat Q_i - b_i`, with the baseline :math:`b_i` of the
  node's own estimator instance (one NVIL baseline network per node, reading the ``context`` that
  node is given);
* ``muprop`` expands :math:`\hat Q_i` to first order around the node's mean
  :math:`\mu_i = \mathbb E[z_i]` by differentiating the downstream function at :math:`\mu_i`,
  i.e. through the downstream network (Gu, Levine, Sutskever & Mnih 2016, arXiv:1511.05176). Its
  downstream nodes are sampled there by their own estimators, where the paper propagates means
  deterministically (its mean-field network): the slope is then a stochastic one, and any slope
  keeps MuProp unbiased, since its baseline is linear in :math:`z_i` and its mean is added back;
* pathwise estimators (``gs``, ``st-gs``, ``st``, ...) pass their relaxed (or straight-through)
  sample into the downstream function, and the gradient flows through the next layers' logits.

The estimate is unbiased for every parameter when every node's estimator is unbiased
(``estimator_class(name).unbiased``): the downstream value is an unbiased draw of the conditional
expected cost and its gradient an unbiased estimate of that expectation's gradient, which is all
a score-function, MuProp, REBAR or RELAX node needs of its ``f`` (the tests check it against
exact enumeration of two-layer networks).

Shapes. An estimator calls the downstream function on samples with leading sample dimensions
(MuProp stacks the sample and the mean, RLOO draws M samples, REBAR stacks three), so a downstream
function maps ``z`` of shape ``(*s, *batch, N, K)`` to costs ``(*s, *batch)``, with layers that
act on the last dimension (``nn.Linear`` on ``z.flatten(-2)``); a nested node then returns
``(*s, *batch)`` as well.

Variance normalisation. NVIL's normalisation (``normalize=True``) scales the learning signal of
its node's logits by :math:`1/\max(1, \sqrt v)` (its ``scale``): the estimate for the parameters
upstream of those logits is unbiased for that positive multiple of their gradient, as in a single
layer; the decoder's and other nodes' gradients are not scaled.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .estimators._base import Estimator

__all__ = ["Downstream", "stochastic_node"]

#: ``z (*s, *batch, N, K) -> costs (*s, *batch)``: the costs downstream of a node.
Downstream = Callable[[Tensor], Tensor]


def stochastic_node(
    estimator: Estimator,
    logits: Tensor,
    downstream: Downstream,
    *,
    generator: torch.Generator | None = None,
    context: Tensor | None = None,
) -> Tensor:
    r"""Sample a stochastic node with ``estimator`` and return the costs downstream of it.

    .. math:: \text{out} = \hat Q + \big(s - \mathrm{sg}(s)\big),

    with :math:`\hat Q` the downstream cost at the node's sample (the estimator's estimate of
    its mean for estimators that draw several: ``rloo``'s mean, ``unordered-set``'s and
    ``exact``'s weighted sums, :meth:`EstimatorResult.objective`) and :math:`s` the estimator's surrogate for
    ``f = downstream``: the value of ``out`` is the sampled cost, which an upstream node uses as
    its learning signal, and its gradient is the estimator's estimate of
    :math:`\nabla\,\mathbb E[\text{downstream}(z)]` for the logits (and whatever produced them),
    the parameters inside ``downstream`` and the estimator's learned parts. See the module
    docstring for the credit assignment and for why the whole is unbiased when every node's
    estimator is.

    Args:
        estimator: any registered estimator, one instance per node (its baseline or control
            variate is then the node's own).
        logits: ``(*batch, N, K)``, the node's logits (they may depend on upstream samples).
        downstream: ``z (*s, *batch, N, K) -> (*s, *batch)``, the costs that depend on this
            node's sample, including the nested nodes below it.
        generator: the random source of this node's samples.
        context: an input the node's samples do not depend on, for estimators that
            ``takes_context`` (NVIL's baseline reads it).

    Returns:
        ``(*batch)``: the sampled downstream cost, carrying the estimator's gradient.

    Raises:
        ValueError: an estimator that declares ``multi_sample_bound`` (VIMCO): it optimises
            another objective than the node's expected cost.
        TypeError: ``estimator`` is not an :class:`~gumbel_softmax.estimators.Estimator`;
            the estimator's own errors for ``logits``, ``downstream``, ``generator`` and
            ``context`` (it validates them once, on entry).
    """
    if not isinstance(estimator, Estimator):
        raise TypeError(
            "estimator must be a gumbel_softmax.estimators.Estimator (e.g. "
            f"estimators.build(name, event_shape=(N, K))), got {type(estimator).__name__}"
        )
    if estimator.multi_sample_bound:
        raise ValueError(
            f"estimator {estimator.registry_name!r} optimises a multi-sample bound "
            "(-log mean exp(-f) over its samples), not E[downstream]: a stochastic node's value "
            "must be an unbiased draw of its expected downstream cost; use an estimator of E f "
            "(e.g. 'rloo' for several samples)"
        )
    result = estimator(logits, downstream, generator=generator, context=context)
    surrogate = result.surrogate
    # The estimator's own estimate of E[downstream]: the mean over i.i.d. samples (rloo), the
    # weighted sum over a set drawn without replacement (unordered-set) or over every state
    # (exact); a plain mean would be biased for the last two.
    value = result.objective().to(surrogate.dtype)
    return value + (surrogate - surrogate.detach())
