r"""Adversarial generation of discrete sequences (issue 13; Kusner & Hernández-Lobato 2016,
arXiv:1611.04051): an LSTM generator of grammar strings trained against an LSTM discriminator,
its gradient from any registered estimator that samples one token at a time, on the lab's runner;
and the maximum-likelihood LSTM of the same size as the baseline.

The generator. An LSTM emits :math:`T = 16` tokens (the 15 of the longest string and an end
token, :mod:`.grammar`): at step :math:`t` its state gives logits :math:`\ell_t`, the estimator
draws :math:`z_t` (a relaxed one-hot for ``gs``, a one-hot for ``st-gs`` and the score-function
family) and :math:`z_t`, embedded linearly, is the next input. The string ends at the first end
token; what the discriminator reads is the sequence with everything after the end replaced by the
end token, softly for relaxed samples:

.. math:: x_t = a_t\,z_t + (1 - a_t)\,e_{\mathrm{EOS}}, \qquad
          a_t = \prod_{s<t} \bigl(1 - z_{s,\mathrm{EOS}}\bigr),

which is exact for one-hot samples, and the real strings are padded the same way. Each token is a
stochastic node (:func:`gumbel_softmax.graph.stochastic_node`) whose downstream function draws the
rest of the sequence and returns the generator's cost, so pathwise estimators differentiate
through every later token and score-function ones (``sf``, ``sf-ema``, ``nvil``: REINFORCE with
no, a running-mean or a learned per-prefix baseline reading the LSTM state) weight
:math:`\nabla\log q(z_t \mid z_{<t})` by the cost of the whole sequence, or, with
``reward="rollout"``, by SeqGAN's per-token Monte Carlo estimate of the expected cost given the
prefix through :math:`z_t` (:func:`generator_cost`). Only estimators that declare
``single_evaluation`` apply: one that evaluates ``f`` at M points would evaluate the rest of the
sequence :math:`M^{T}` times; the rollout reward takes only those that also declare
``learning_signal``.

The game. With :math:`D` the discriminator's logit, the discriminator minimises
:math:`\mathrm{softplus}(-D(x_{\text{real}})) + \mathrm{softplus}(D(x_{\text{fake}}))` and the
generator the non-saturating :math:`\mathrm{softplus}(-D(x_{\text{fake}}))` (Goodfellow et al.
2014, arXiv:1406.2661). Both take their step from the same batch at once: one backward pass of
the sum, the generator's cost through a copy of the discriminator's weights that does not
collect gradient, the discriminator's on the detached fake sequence (simultaneous gradient
descent, so the lab's one-optimiser runner trains both; Adam with one learning rate for each
player, ``lr`` and ``lr_d``). With ``d_steps = k > 1`` each adversarial step first makes k - 1
discriminator-only updates, each on fresh fakes (:func:`draw_fake`) and its own real batch, with
the same optimiser (only the discriminator has gradients then, so Adam leaves the generator and
its moments alone), and then the simultaneous step: k discriminator updates per generator
update, all inside one step of the runner, so checkpoints and resume are unchanged; real batch
:math:`p + k a + i` (``pretrain_steps`` p, adversarial step a, update i < k) is used, so k = 1
is exactly the simultaneous game. ``pretrain_steps`` of maximum likelihood come first when
asked for.

The temperature follows :meth:`~gumbel_softmax.lab.config.GANConfig.schedule` over the
adversarial steps: RelGAN's inverse-temperature schedule by default (Nie et al. 2019), or the
exponential anneal, or a constant.

Metrics, each evaluation, from ``eval_strings`` exact samples at each sampling temperature (the
logits divided by it): parse rate (valid strings / all), unique (distinct strings / all), novel
(valid strings not in the training set / valid strings), and the held-out NLL (nats per string,
teacher-forced, end token included), defined for every run since the generator is
autoregressive. The maximum-likelihood baseline across sampling temperatures traces the
quality-diversity curve of Caccia et al. (2018, arXiv:1811.02549).

The synthetic oracle (``task="oracle"``; SeqGAN, Yu et al. 2017, arXiv:1609.05473, and RelGAN):
the data are sequences of ``oracle_length`` tokens (no end token) drawn from a randomly
initialised LSTM (:func:`build_oracle`), and each evaluation reports
:math:`\mathrm{NLL}_{\text{oracle}}` (the oracle's NLL of the generator's samples, the quality)
and :math:`\mathrm{NLL}_{\text{gen}}` (the generator's NLL of held-out oracle samples, the
coverage), both in nats per token; the oracle's own entropy rate is the floor of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gumbel_softmax import estimators, sample_categorical
from gumbel_softmax.graph import stochastic_node
from gumbel_softmax.schedules import Schedule

from . import grammar
from .config import GANConfig, estimators_declaring
from .experiments import EXPERIMENTS
from .records import derive_seed, read_metrics
from .runner import (
    Cadence,
    Progress,
    RunDirectory,
    StepOutput,
    Training,
    minibatches,
    require_extras,
    resolve_device,
    train,
)

__all__ = [
    "LENGTH",
    "Discriminator",
    "GANResult",
    "Generator",
    "SequenceGAN",
    "build_estimator",
    "build_model",
    "build_oracle",
    "discriminator_loss",
    "draw_fake",
    "generator_cost",
    "main",
    "mask_after_end",
    "oracle_data",
    "string_metrics",
]

#: Tokens a generated sequence has: the longest valid string and its end token.
LENGTH = grammar.MAX_TOKENS + 1
_RESUMABLE_KEYS = frozenset({"epochs", "max_steps", "progress", "figures", "run_dir"})
# Only the final evaluation (and the periodic validation) reads these: other values re-run
# the final evaluation of a finished run alone.
_FINAL_FIELDS = frozenset(EXPERIMENTS["gan"].final_fields)


class Generator(nn.Module):
    r"""An LSTM language model over ``vocab`` tokens whose input is a (relaxed) one-hot
    vector: ``embed`` (linear) -> ``LSTMCell`` -> ``head`` (logits). With ``end`` (the grammar's
    :data:`~.grammar.EOS`) a string ends at its first end token; with ``end=None`` every
    sequence has the full length (the synthetic oracle).

    Shapes: :meth:`start` ``-> (h, c)``, each ``(batch, hidden)`` (the state after a zero start
    input); :meth:`advance` ``z (batch, V), state -> state``; :meth:`log_prob`
    ``tokens (batch, T) -> (batch,)``; :meth:`sample` ``-> tokens (n, T)``.
    """

    def __init__(
        self,
        *,
        vocab: int = grammar.VOCAB,
        embed: int = 16,
        hidden: int = 64,
        end: int | None = grammar.EOS,
    ) -> None:
        super().__init__()
        self.vocab, self.hidden, self.end = vocab, hidden, end
        self.embed = nn.Linear(vocab, embed, bias=False)
        self.cell = nn.LSTMCell(embed, hidden)
        self.head = nn.Linear(hidden, vocab)

    def start(self, batch: int) -> tuple[Tensor, Tensor]:
        w = self.embed.weight
        return self.cell(w.new_zeros(batch, self.embed.out_features))

    def advance(self, z: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return self.cell(self.embed(z), state)

    def log_prob(self, tokens: Tensor) -> Tensor:
        r""":math:`\log p(s) = \sum_{t \le e} \log p(s_t \mid s_{<t})`, ``e`` the first end token
        (teacher forcing); a row without one (every row when ``end`` is None) counts all T."""
        one_hot = F.one_hot(tokens, self.vocab).to(self.head.weight.dtype)
        state = self.start(tokens.shape[0])
        terms = []
        for t in range(tokens.shape[1]):
            terms.append(self.head(state[0]).log_softmax(-1))
            state = self.advance(one_hot[:, t], state)
        log_q = torch.stack(terms, 1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        if self.end is None:
            return log_q.sum(1)
        ended_before = (tokens == self.end).long().cumsum(1) - (tokens == self.end).long()
        return (log_q * (ended_before == 0)).sum(1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        length: int = LENGTH,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``n`` exact ancestral samples of ``length`` tokens from the logits divided by
        ``temperature`` (Gumbel-max)."""
        state = self.start(n)
        tokens = []
        for _ in range(length):
            z = sample_categorical(
                self.head(state[0]) / temperature, one_hot=True, generator=generator
            )
            tokens.append(z.argmax(-1))
            state = self.advance(z, state)
        return torch.stack(tokens, 1)


class Discriminator(nn.Module):
    """An LSTM over the (relaxed) one-hot sequence ``(batch, T, V)`` -> a logit ``(batch,)``
    read from its last state (real = positive)."""

    def __init__(self, *, vocab: int = grammar.VOCAB, embed: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(vocab, embed, bias=False)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        _, (h, _) = self.lstm(self.embed(x))
        return self.out(h[-1]).squeeze(-1)


class SequenceGAN(nn.Module):
    """The two players, one module (one entry of the checkpoint)."""

    def __init__(
        self,
        *,
        vocab: int = grammar.VOCAB,
        end: int | None = grammar.EOS,
        embed: int = 16,
        hidden: int = 64,
        disc_hidden: int = 64,
    ) -> None:
        super().__init__()
        self.generator = Generator(vocab=vocab, embed=embed, hidden=hidden, end=end)
        self.discriminator = Discriminator(vocab=vocab, embed=embed, hidden=disc_hidden)


def mask_after_end(z: Tensor) -> Tensor:
    r""":math:`x_t = a_t z_t + (1 - a_t) e_{\mathrm{EOS}}`, :math:`a_t = \prod_{s<t}(1 -
    z_{s,\mathrm{EOS}})` (module docstring): ``z (batch, T, V) -> (batch, T, V)``; one-hot rows
    after the first end token become end tokens."""
    alive = torch.cumprod(1 - z[..., grammar.EOS], -1)
    alive = torch.cat([torch.ones_like(alive[..., :1]), alive[..., :-1]], -1).unsqueeze(-1)
    end = F.one_hot(torch.tensor(grammar.EOS), z.shape[-1]).to(z)
    return alive * z + (1 - alive) * end


def generator_cost(
    model: SequenceGAN,
    estimator: estimators.Estimator,
    batch: int,
    *,
    generator: torch.Generator,
    length: int = LENGTH,
    rollouts: int = 0,
) -> tuple[Tensor, Tensor]:
    r"""``(cost, fake)``: the generator's per-sequence cost
    :math:`C = \mathrm{softplus}(-D(x))` ``(batch,)``, whose gradient is the estimator's
    estimate of :math:`\nabla\,\mathbb E[C]` for the generator's (and the estimator's)
    parameters and none for the discriminator's, and the sequence ``x`` the discriminator read,
    detached ``(batch, T, V)``.

    The learning signal of token :math:`t`. With ``rollouts = 0`` every token's estimator sees
    the cost of the whole sequence, :math:`\hat Q_t = C(y_{1:T})`. With ``rollouts = N >= 1``
    (SeqGAN's Monte Carlo search, Yu et al. 2017, arXiv:1609.05473, section 4, eq. 4) it sees
    the mean cost of N completions of the prefix through :math:`y_t`,

    .. math:: \hat Q_t = \frac1N\sum_{n=1}^N C\bigl(y_{1:t}, y^{(n)}_{t+1:T}\bigr),
              \quad y^{(n)}_{t+1:T} \sim q_\theta(\cdot \mid y_{1:t}) \text{ i.i.d.},
              \qquad \hat Q_T = C(y_{1:T}),

    drawn (exact ancestral samples, no gradient) from the *current* generator, where SeqGAN's
    code rolls out from a delayed copy of it: with the current one the estimate stays unbiased.
    Why: :math:`\nabla\,\mathbb E[C] = \sum_t \mathbb E[\nabla\log q(y_t \mid y_{<t})\,C]
    = \sum_t \mathbb E[\nabla\log q(y_t \mid y_{<t})\,Q_t]` with
    :math:`Q_t = \mathbb E[C \mid y_{1:t}]` (the score is a function of :math:`y_{1:t}`; the
    tower rule), and :math:`\mathbb E[\hat Q_t \mid y_{1:t}] = Q_t` because the completions
    are i.i.d. draws of the same conditional; the estimator's baseline (``sf-ema``'s running
    mean, NVIL's network of the state before :math:`y_t`) still applies, it does not depend on
    :math:`y_t`. The signal's variance is :math:`\mathrm{Var}\,Q_t + \mathbb E\,
    \mathrm{Var}(C \mid y_{1:t})/N \le \mathrm{Var}\,C`. The rollouts of all T - 1 prefixes
    are drawn as one batch after the sequence, from ``generator``, and cost
    :math:`N(T-1)` discriminator passes of the batch and :math:`N T (T-1)/2` generator steps.
    Only estimators that declare ``learning_signal`` take it (their estimate uses the signal's
    value alone): a pathwise one differentiates the cost through the sample instead.

    Raises:
        ValueError: an estimator that does not declare ``single_evaluation``; ``rollouts`` not
            an int >= 0, or >= 1 with an estimator that does not declare ``learning_signal``.
    """
    if not estimator.single_evaluation:
        raise ValueError(
            f"estimator {estimator.registry_name!r} does not declare single_evaluation: nested "
            f"over {length} tokens it would evaluate the sequence M**{length} times"
        )
    if isinstance(rollouts, bool) or not isinstance(rollouts, int) or rollouts < 0:
        raise ValueError(f"rollouts must be an int >= 0, got {rollouts!r}")
    if rollouts and not estimator.learning_signal:
        raise ValueError(
            f"estimator {estimator.registry_name!r} does not declare learning_signal: its "
            "gradient is not a score-function term weighted by the cost's value, so a "
            "per-token rollout reward (rollouts >= 1) does not apply; use one of "
            + estimators_declaring(single_evaluation=True, learning_signal=True)
        )
    gen, disc = model.generator, model.discriminator
    frozen = {k: v.detach() for k, v in disc.named_parameters()}
    seen: dict[str, Tensor] = {}
    states: list[tuple[Tensor, Tensor]] = []  # after y_1 .. y_{T-1}: where rollouts start
    signal: list[Tensor] = []  # Q-hat of the prefixes through y_1 .. y_{T-1}

    def cost(z: Tensor) -> Tensor:
        x = z if gen.end is None else mask_after_end(z)
        seen["fake"] = x.detach()  # the last call's: the sequence's own (rollouts come first)
        return F.softplus(-torch.func.functional_call(disc, frozen, (x,)))

    def node(t: int, state: tuple[Tensor, Tensor], prefix: tuple[Tensor, ...]) -> Tensor:
        def downstream(z: Tensor) -> Tensor:
            tokens = (*prefix, z[..., 0, :])
            if t + 1 == length:
                seq = torch.stack(tokens, -2)
                if rollouts:
                    signal.extend(
                        _rollout_costs(gen, seq.detach(), states, rollouts, cost, generator)
                    )
                out = cost(seq)
                seen["cost"] = out.detach()
                return out
            after = gen.advance(z[..., 0, :], state)
            if rollouts:
                states.append(after)
            inner = node(t + 1, after, tokens)
            if not rollouts:
                return inner
            # value: the rollout estimate Q-hat_t; gradient: the later tokens' own estimate
            return signal[t] + (inner - inner.detach())

        return stochastic_node(
            estimator,
            gen.head(state[0]).unsqueeze(-2),
            downstream,
            generator=generator,
            context=state[0].detach() if estimator.takes_context else None,
        )

    out = node(0, gen.start(batch), ())
    if rollouts:  # report the sequence's own cost, not the first token's rollout estimate
        out = seen["cost"] + (out - out.detach())
    return out, seen["fake"]


@torch.no_grad()
def _rollout_costs(
    gen: Generator,
    seq: Tensor,
    states: list[tuple[Tensor, Tensor]],
    n: int,
    cost: Any,
    generator: torch.Generator,
) -> list[Tensor]:
    """``[Q-hat_1, ..., Q-hat_{T-1}]``, each ``(batch,)``: the mean cost of ``n`` completions of
    each prefix ``seq[:, :t]`` drawn from ``gen`` starting at ``states[t - 1]``. Rows are ordered
    by prefix, so at rollout step s the prefixes that still need a token are the first rows."""
    batch, length, vocab = seq.shape
    prefixes = length - 1
    h = torch.stack([s[0] for s in states]).unsqueeze(1).expand(-1, n, -1, -1)
    c = torch.stack([s[1] for s in states]).unsqueeze(1).expand(-1, n, -1, -1)
    state = (h.reshape(-1, h.shape[-1]), c.reshape(-1, c.shape[-1]))
    drawn = seq.new_zeros(prefixes * n * batch, prefixes, vocab)
    for s in range(prefixes):  # prefix t (1-based) needs tokens t+1 .. T: steps s < T - t
        rows = (prefixes - s) * n * batch
        state = (state[0][:rows], state[1][:rows])
        z = sample_categorical(gen.head(state[0]), one_hot=True, generator=generator)
        drawn[:rows, s] = z
        if s + 1 < prefixes:
            state = gen.advance(z, state)
    drawn = drawn.view(prefixes, n, batch, prefixes, vocab)
    full = [
        torch.cat([seq[:, : t + 1].expand(n, -1, -1, -1), drawn[t, :, :, : prefixes - t]], -2)
        for t in range(prefixes)
    ]
    costs = cost(torch.stack(full).reshape(-1, length, vocab)).view(prefixes, n, batch)
    return list(costs.mean(1).unbind(0))


def draw_fake(
    model: SequenceGAN,
    estimator: estimators.Estimator,
    batch: int,
    *,
    generator: torch.Generator,
    length: int = LENGTH,
) -> Tensor:
    """``(batch, T, V)``: a batch of the sequences the discriminator reads, drawn token by token
    by ``estimator`` exactly as :func:`generator_cost` draws them (relaxed for ``gs``, one-hot
    for the score-function family), without gradient and with the estimator in eval mode (its
    running baselines untouched): the fakes of the extra discriminator steps (``d_steps``)."""
    gen = model.generator
    was = estimator.training
    estimator.eval()
    try:
        with torch.no_grad():
            state = gen.start(batch)
            tokens = []
            for _ in range(length):
                r = estimator(
                    gen.head(state[0]).unsqueeze(-2),
                    lambda z: z.new_zeros(z.shape[:-2]),
                    generator=generator,
                    context=state[0] if estimator.takes_context else None,
                )
                tokens.append(r.sample[..., 0, :])
                state = gen.advance(tokens[-1], state)
            seq = torch.stack(tokens, -2)
            return seq if gen.end is None else mask_after_end(seq)
    finally:
        estimator.train(was)


def discriminator_loss(
    model: SequenceGAN, real: Tensor, fake: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(loss, d_real, d_fake)``: :math:`\mathrm{softplus}(-D(x_r)) + \mathrm{softplus}(D(x_f))`
    averaged over the batch, and the mean probabilities :math:`\sigma(D)` it gives each side."""
    d_real, d_fake = model.discriminator(real), model.discriminator(fake.detach())
    loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    return loss, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()


def string_metrics(
    strings: Sequence[tuple[str, ...]], train_set: frozenset[tuple[str, ...]]
) -> dict[str, float]:
    """``parse_rate`` (valid / all), ``unique`` (distinct / all) and ``novel`` (valid strings not
    in ``train_set`` / valid strings; 0 when none is valid) of generated strings."""
    valid = [s for s in strings if grammar.is_valid(s)]
    n = max(1, len(strings))
    return {
        "parse_rate": len(valid) / n,
        "unique": len(set(strings)) / n,
        "novel": sum(s not in train_set for s in valid) / len(valid) if valid else 0.0,
    }


def build_model(config: GANConfig) -> SequenceGAN:
    """The two players of ``config``, initialised from ``config.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return SequenceGAN(
            vocab=_vocab(config),
            end=grammar.EOS if config.task == "grammar" else None,
            embed=config.embed,
            hidden=config.hidden,
            disc_hidden=config.disc_hidden,
        )


def _vocab(config: GANConfig) -> int:
    return grammar.VOCAB if config.task == "grammar" else config.oracle_vocab


def _length(config: GANConfig) -> int:
    return LENGTH if config.task == "grammar" else config.oracle_length


def build_oracle(config: GANConfig) -> Generator:
    r"""The synthetic oracle of SeqGAN (Yu et al. 2017, arXiv:1609.05473) and RelGAN: an LSTM of
    ``oracle_hidden`` units over ``oracle_vocab`` tokens, every parameter drawn from
    :math:`\mathcal N(0, 1)` with ``config.seed``, sequences of ``oracle_length`` tokens and no
    end token. Its samples are the data; :math:`\mathrm{NLL}_{\text{oracle}}` is its NLL of the
    generator's samples."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "oracle"))
        oracle = Generator(
            vocab=config.oracle_vocab,
            embed=config.oracle_hidden,
            hidden=config.oracle_hidden,
            end=None,
        )
        for p in oracle.parameters():
            nn.init.normal_(p, 0.0, 1.0)
    return oracle.requires_grad_(False).eval()


def build_estimator(config: GANConfig) -> estimators.Estimator:
    """The generator's estimator by its declared capabilities: a scheduled temperature starts at
    ``schedule(0)``, a fixed one is ``tau0``; NVIL's baseline reads the LSTM state."""
    cls = estimators.estimator_class(config.estimator)
    options: dict[str, Any] = {}
    if cls.temperature_kind == "scheduled":
        options["temperature"] = config.schedule()(0)
    elif cls.temperature_kind is not None:
        options["temperature"] = config.tau0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init", "estimator"))
        return estimators.build(
            config.estimator,
            event_shape=(1, _vocab(config)),
            context_features=config.hidden,
            **options,
        )


class _AfterPretraining(Schedule):
    """``schedule(max(0, step - offset))``: the adversarial steps' schedule."""

    def __init__(self, schedule: Schedule, offset: int) -> None:
        self.schedule, self.offset = schedule, offset

    def __call__(self, step: int) -> float:
        return self.schedule(max(0, step - self.offset))

    @property
    def lowest(self) -> float:
        return self.schedule.lowest


def oracle_data(config: GANConfig, oracle: Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(train, held_out)``: ``n_train`` then ``n_held_out`` sequences ``(n, oracle_length)``
    drawn from the oracle (:func:`build_oracle`) with a generator seeded by ``config.seed``."""
    oracle = build_oracle(config) if oracle is None else oracle
    device = oracle.head.weight.device
    rng = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "oracle", "data"))
    length = config.oracle_length
    return (
        oracle.sample(config.n_train, length=length, generator=rng),
        oracle.sample(config.n_held_out, length=length, generator=rng),
    )


@dataclass(frozen=True)
class GANResult:
    """The final metrics of a run (at sampling temperature 1 and at each of the config's), its
    samples and where its record is."""

    step: int
    final: dict[str, Any]
    run_dir: Path
    figures: list[Path]


def main(config: GANConfig) -> GANResult:
    """Train (or resume) the run ``config`` describes and return its final metrics.

    Raises:
        ConfigError: an invalid config, a run directory that is a file or holds another run.
        RunError: the device is not available, an optional package is missing.
        CheckpointError: every checkpoint of the run directory is corrupt.
        OSError: a file of the run record cannot be written (the error names it).
    """
    config.validate()
    run = RunDirectory(config.run_dir)
    run.check_config(
        config.to_dict(), resumable=_RESUMABLE_KEYS | _FINAL_FIELDS, defaults=GANConfig().to_dict()
    )
    device = resolve_device(config.device)
    require_extras(progress=config.progress, figures=config.figures)
    length, vocab = _length(config), _vocab(config)
    oracle: Generator | None = None
    if config.task == "grammar":
        data = grammar.grammar_data(config.seed, config.n_train, config.n_held_out)
        train_tokens = grammar.encode(data.train, LENGTH).to(device)
        held_out = grammar.encode(data.held_out, LENGTH).to(device)
        train_set = data.train_set
    else:
        oracle = build_oracle(config).to(device)
        train_tokens, held_out = oracle_data(config, oracle)
        train_set = frozenset()
    steps_per_epoch, minibatch = minibatches(train_tokens, config.batch_size, config.seed)

    model = build_model(config).to(device)
    estimator = build_estimator(config).to(device)
    optimizer = torch.optim.Adam(
        [
            {"params": list(model.generator.parameters()), "lr": config.lr},
            {"params": list(model.discriminator.parameters()), "lr": config.lr_d},
            {"params": list(estimator.parameters()), "lr": config.lr},
        ],
        betas=(0.5, 0.999),  # the usual GAN choice (Radford et al. 2015, arXiv:1511.06434)
    )
    sampler = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "samples"))
    adversarial = config.objective == "gan"

    def batch(step: int) -> tuple[int, Tensor]:
        if adversarial and step >= config.pretrain_steps and config.d_steps > 1:
            # the last of the step's d_steps real batches (the simultaneous update's)
            step_batch = (
                config.pretrain_steps + (step - config.pretrain_steps + 1) * config.d_steps - 1
            )
            return step, minibatch(step_batch)
        return step, minibatch(step)

    rollouts = config.rollouts if config.reward == "rollout" else 0
    d_steps = config.d_steps

    def discriminator_only_step(at: int, i: int) -> None:
        # The i-th of the d_steps - 1 extra discriminator updates of adversarial step `at`:
        # fresh fakes from the current generator, the i-th of this step's d_steps real batches
        # (the last is the one of the simultaneous step), one step of the shared optimiser in
        # which only the discriminator has gradients (Adam skips the others, state and all).
        real_tokens = minibatch(config.pretrain_steps + (at - config.pretrain_steps) * d_steps + i)
        fake = draw_fake(model, estimator, real_tokens.shape[0], generator=sampler, length=length)
        real = F.one_hot(real_tokens, vocab).to(fake.dtype)
        optimizer.zero_grad(set_to_none=True)
        discriminator_loss(model, real, fake)[0].backward()
        optimizer.step()

    def step(item: tuple[int, Tensor]) -> StepOutput:
        at, tokens = item
        if not adversarial or at < config.pretrain_steps:
            nll = -model.generator.log_prob(tokens).mean()
            return StepOutput(nll, {"loss": float(nll.detach()), "nll": float(nll.detach())})
        for i in range(d_steps - 1):
            discriminator_only_step(at, i)
        cost, fake = generator_cost(
            model, estimator, tokens.shape[0], generator=sampler, length=length, rollouts=rollouts
        )
        real = F.one_hot(tokens, vocab).to(fake.dtype)
        d_loss, d_real, d_fake = discriminator_loss(model, real, fake)
        g_loss = cost.mean()
        return StepOutput(
            g_loss + d_loss,
            {
                "loss": float(g_loss.detach() + d_loss.detach()),
                "g_loss": float(g_loss.detach()),
                "d_loss": float(d_loss.detach()),
                "d_real": float(d_real.detach()),
                "d_fake": float(d_fake.detach()),
            },
        )

    def measure(at: int, samples: bool = False) -> dict[str, Any]:
        gen = model.generator
        was = gen.training
        gen.eval()
        try:
            metrics: dict[str, Any] = {}
            with torch.no_grad():
                nll = -gen.log_prob(held_out)
            metrics["heldout_nll"] = float(nll.mean())
            for tau in sorted({1.0, *config.temperatures()}):
                g = torch.Generator(device=device).manual_seed(
                    derive_seed(config.seed, "eval", at, tau)
                )
                if oracle is not None:  # per token, as SeqGAN reports them
                    drawn = gen.sample(
                        config.eval_strings, length=length, temperature=tau, generator=g
                    )
                    nll_oracle = float(-oracle.log_prob(drawn).mean()) / length
                    metrics[f"nll_oracle@{tau:g}"] = nll_oracle
                    if tau == 1.0:
                        metrics["nll_oracle"] = nll_oracle
                        metrics["nll_gen"] = metrics["heldout_nll"] / length
                        if samples:
                            metrics["samples"] = [" ".join(map(str, s)) for s in drawn.tolist()]
                    continue
                strings = grammar.decode(
                    gen.sample(config.eval_strings, temperature=tau, generator=g)
                )
                values = string_metrics(strings, train_set)
                if tau == 1.0:
                    metrics.update(values)
                    if samples:
                        metrics["samples"] = [" ".join(s) for s in strings]
                metrics.update({f"{k}@{tau:g}": v for k, v in values.items()})
            return metrics
        finally:
            gen.train(was)

    def final(at: int, progress: Progress) -> dict[str, Any]:
        return measure(at, samples=True)

    schedule = None
    if adversarial and estimators.estimator_class(config.estimator).temperature_kind == "scheduled":
        schedule = _AfterPretraining(config.schedule(), config.pretrain_steps)
    result = train(
        run,
        Training(
            modules={"model": model, "estimator": estimator},
            optimizer=optimizer,
            generator=sampler,
            batch=batch,
            step=step,
            evaluate=measure,
            final=final,
            final_key={"eval_strings": config.eval_strings},
            final_fields=_FINAL_FIELDS,
            estimator=estimator if adversarial else None,
            schedule=schedule,
        ),
        Cadence.of(config, steps_per_epoch),
        config=config.to_dict(),
        seed=config.seed,
        progress=config.progress,
        session={"task": config.task, "steps_per_epoch": steps_per_epoch, "length": length},
    )
    figures: list[Path] = []
    if config.figures:
        figures = draw(read_metrics(run.metrics), result.final, run.figures)
    return GANResult(step=result.step, final=result.final, run_dir=run.path, figures=figures)


def draw(metrics: list[dict[str, Any]], final: dict[str, Any], out_dir: Path) -> list[Path]:
    """``curves.png`` of a run: parse rate (evaluations), the players' losses and the
    temperature against steps."""
    from .figures import _finish, _plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    evals = [r for r in metrics if r["kind"] == "eval"]
    rows = [r for r in metrics if r["kind"] == "train"]
    steps = [r["step"] for r in evals]
    if evals and "parse_rate" in evals[0]:
        axes[0].plot(steps, [r["parse_rate"] for r in evals], label="parse rate")
        axes[0].plot(steps, [r["unique"] for r in evals], label="unique")
        axes[0].set(xlabel="step", ylim=(0, 1.02), title="samples (τ_sample = 1)")
    else:  # the synthetic oracle
        axes[0].plot(steps, [r["nll_oracle"] for r in evals], label="NLL_oracle")
        axes[0].plot(steps, [r["nll_gen"] for r in evals], label="NLL_gen")
        axes[0].set(xlabel="step", ylabel="nats per token", title="synthetic oracle")
    axes[0].legend()
    for key in ("d_loss", "g_loss", "nll"):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            axes[1].plot(*zip(*pts, strict=True), label=key)
    axes[1].set(xlabel="step", title="training losses (nats)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend()
    taus = [(r["step"], r["temperature"]) for r in rows if r.get("temperature") is not None]
    if taus:
        axes[2].plot(*zip(*taus, strict=True))
        axes[2].set_yscale("log")
    axes[2].set(xlabel="step", title="estimator temperature τ")
    return [_finish(fig, out_dir / "curves.png")]
