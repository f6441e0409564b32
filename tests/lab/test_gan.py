"""The sequence GAN (issue 13): the grammar, its recogniser and data, the generator's exact
likelihood and sampler, the generator's cost, the metrics, the config and the CLI.

The every-estimator runs of ``gumbel-softmax gan`` (training, resuming bit for bit) are in
``test_every_estimator.py``; these are the rest, each a few seconds at most.
"""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from gumbel_softmax import estimators
from gumbel_softmax.diagnostics import all_states
from gumbel_softmax.lab import cli, gan, grammar
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import ConfigError, GANConfig
from gumbel_softmax.lab.records import read_metrics
from gumbel_softmax.testing import assert_categorical, assert_close_mean, assert_mean_differs

FALSE_ALARM = 1e-3


# --------------------------------------------------------------------------- the grammar
def test_the_recogniser_agrees_with_the_grammar_on_every_string_of_up_to_six_tokens():
    language = grammar.derivable(6)
    assert len(language) == 198  # by the derivations; the recogniser never saw this number
    for n in range(7):
        for s in itertools.product(grammar.TOKENS, repeat=n):
            assert grammar.parses(s) == (s in language), s


def test_derivable_counts_match_the_closed_form_of_parenthesis_free_strings():
    # Without parentheses a sentence of 2m + 1 tokens is m + 1 variables and m operators in
    # alternation: 2**(m+1) * 4**m of them.
    for m in range(4):
        n = 2 * m + 1
        free = {s for s in grammar.derivable(n) if len(s) == n and "(" not in s}
        assert len(free) == 2 ** (m + 1) * 4**m


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("x", True),
        ("( ( x ) ) * y", True),
        ("x + ( y / x ) - y", True),
        ("", False),
        ("x y", False),
        ("( x", False),
        ("x )", False),
        ("+ x", False),
        ("x +", False),
        ("( )", False),
        ("x + y - x * y / x + y - x * y", True),  # 15 tokens, the longest valid
    ],
)
def test_is_valid_examples(text, valid):
    assert grammar.is_valid(tuple(text.split())) == valid


def test_a_longer_sentence_parses_but_is_not_valid():
    longest = tuple("x + y - x * y / x + y - x * y".split())
    s = ("(", *longest, ")")  # sentences have odd lengths: the next one has 17 tokens
    assert len(s) == 17 and grammar.parses(s) and not grammar.is_valid(s)
    assert grammar.is_valid(longest) and len(longest) == grammar.MAX_TOKENS


def test_the_data_are_deterministic_valid_and_diverse():
    data = grammar.grammar_data(0)
    assert len(data.train) == 10_000 and len(data.held_out) == 1_000
    assert all(grammar.is_valid(s) for s in data.train + data.held_out)
    # the same strings from a fresh generator with the documented seed
    rng = random.Random("0/held-out")
    assert [grammar.sample_expression(rng) for _ in range(5)] == list(data.held_out[:5])
    assert grammar.grammar_data(1, 20, 1).train != data.train[:20]
    assert len(set(data.train[:1000])) > 850  # the module docstring's "about 90%"


def test_encode_and_decode_round_trip_and_refuse_bad_strings():
    strings = [("x",), ("(", "y", ")", "*", "x"), ()]
    tokens = grammar.encode(strings)
    assert tokens.shape == (3, 16) and tokens.dtype == torch.int64
    assert (tokens[0, 1:] == grammar.EOS).all() and (tokens[2] == grammar.EOS).all()
    assert grammar.decode(tokens) == strings
    assert grammar.decode(torch.zeros(1, 16, dtype=torch.int64)) == [("x",) * 16]
    with pytest.raises(ValueError, match="unknown token 'z'"):
        grammar.encode([("z",)])
    with pytest.raises(ValueError, match="does not fit length=16"):
        grammar.encode([("x",) * 16])
    with pytest.raises(ValueError, match="seed must be >= 0"):
        grammar.grammar_data(-1)


# --------------------------------------------------------------------------- the generator
def _canonical(length: int) -> torch.Tensor:
    """Every sequence of ``length`` tokens that is EOS after its first EOS: one per string."""
    rows = []
    for seq in itertools.product(range(grammar.VOCAB), repeat=length):
        if grammar.EOS in seq:
            end = seq.index(grammar.EOS)
            if any(t != grammar.EOS for t in seq[end:]):
                continue
        rows.append(seq)
    return torch.tensor(rows)


def test_the_likelihood_is_normalised_over_the_strings_of_a_short_length():
    torch.manual_seed(0)
    gen = gan.Generator(embed=4, hidden=8).double()
    seqs = _canonical(3)  # 8**3 + 8**2 + 8 + 1 strings
    assert len(seqs) == 8**3 + 8**2 + 8 + 1
    with torch.no_grad():
        total = gen.log_prob(seqs).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64), rtol=1e-12, atol=0)


def test_samples_follow_the_likelihood():
    torch.manual_seed(1)
    gen = gan.Generator(embed=4, hidden=8).double()
    seqs = _canonical(2)
    with torch.no_grad():
        probs = gen.log_prob(seqs).exp()
    drawn = gen.sample(20_000, length=2, generator=torch.Generator().manual_seed(2))
    drawn = torch.where(
        (drawn[:, :1] == grammar.EOS), torch.full_like(drawn, grammar.EOS), drawn
    )  # canonical: EOS after the first EOS
    index = {tuple(s): i for i, s in enumerate(seqs.tolist())}
    ids = torch.tensor([index[tuple(s)] for s in drawn.tolist()])
    # a chi-square test at FALSE_ALARM (bins with few expected draws pooled by the helper)
    assert_categorical(ids, probs, false_alarm=FALSE_ALARM)


def test_mask_after_end_is_exact_for_one_hot_rows_and_soft_for_relaxed_ones():
    tokens = torch.tensor([[0, grammar.EOS, 1, 2], [3, 4, 5, 6]])
    z = F.one_hot(tokens, grammar.VOCAB).double()
    x = gan.mask_after_end(z)
    assert x.argmax(-1).tolist() == [[0, grammar.EOS, grammar.EOS, grammar.EOS], [3, 4, 5, 6]]
    soft = torch.full((1, 3, grammar.VOCAB), 1 / grammar.VOCAB, dtype=torch.float64)
    y = gan.mask_after_end(soft)
    torch.testing.assert_close(y.sum(-1), torch.ones(1, 3, dtype=torch.float64))
    alive = (1 - 1 / grammar.VOCAB) ** 2  # two tokens, each ending with 1/9
    assert y[0, 2, 0].item() == pytest.approx(alive / grammar.VOCAB, rel=1e-12)


@pytest.mark.parametrize("name", ["gs", "sf-ema"])
def test_the_generator_cost_trains_the_generator_and_not_the_discriminator(name):
    config = GANConfig(estimator=name, hidden=8, embed=4, disc_hidden=8)
    model, est = gan.build_model(config), gan.build_estimator(config)
    cost, fake = gan.generator_cost(model, est, 5, generator=torch.Generator().manual_seed(0))
    assert cost.shape == (5,) and fake.shape == (5, gan.LENGTH, grammar.VOCAB)
    assert not fake.requires_grad and torch.isfinite(cost).all()
    cost.mean().backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())


def test_the_generator_cost_refuses_an_estimator_that_evaluates_f_several_times():
    config = GANConfig(hidden=8, embed=4, disc_hidden=8)
    model = gan.build_model(config)
    rloo = estimators.build("rloo", event_shape=(1, grammar.VOCAB))
    with pytest.raises(ValueError, match="does not declare single_evaluation"):
        gan.generator_cost(model, rloo, 2, generator=torch.Generator())


def test_string_metrics():
    train = frozenset({("x",), ("y",)})
    strings = [("x",), ("x",), ("x", "+", "y"), ("(",), ()]
    m = gan.string_metrics(strings, train)
    assert m == {"parse_rate": 3 / 5, "unique": 4 / 5, "novel": 1 / 3}
    assert gan.string_metrics([("(",)], train)["novel"] == 0.0


# --------------------------------------------------------------------------- config and CLI
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"estimator": "rloo"}, "does not declare single_evaluation"),
        ({"estimator": "arm"}, "handles binary variables only"),
        ({"estimator": "nope"}, "estimator must be one of"),
        ({"estimator": "reinmax"}, "cannot run at the temperatures"),  # 1/beta_max < 1
        ({"objective": "wgan"}, "objective must be one of"),
        ({"temperature": "learned"}, "temperature must be one of"),
        ({"beta_max": 0.5}, "beta_max must be >= 1"),
        ({"sample_temperatures": "1,-2"}, "sample_temperatures must be"),
        ({"pretrain_steps": -1}, "pretrain_steps must be >= 0"),
        ({"lr_d": 0.0}, "lr_d must be positive"),
        ({"hidden": 0}, "hidden must be >= 1"),
    ],
)
def test_bad_config_values_are_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        GANConfig().replace(**changes)


def test_reinmax_runs_with_a_schedule_it_accepts():
    config = GANConfig(estimator="reinmax", temperature="constant", tau0=1.0).validate()
    assert gan.build_estimator(config).temperature == 1.0


def test_the_cli_refuses_bad_options_with_exit_2_before_writing(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["gan", "--estimator", "rloo", "--run-dir", str(run)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "gumbel-softmax: error: " in err and "single_evaluation" in err
    assert "Traceback" not in err and not run.exists()
    with pytest.raises(SystemExit) as info:
        cli.main(["gan", "--objective", "wgan"])
    assert info.value.code == 2


def _tiny(run, *more):
    return [
        "gan", "--n-train", "64", "--n-held-out", "20", "--hidden", "8", "--embed", "4",
        "--disc-hidden", "8", "--batch-size", "16", "--epochs", "2", "--log-every", "2",
        "--eval-every", "4", "--eval-strings", "20", "--sample-temperatures", "0.5,1",
        "--no-progress", "--run-dir", str(run), *more,
    ]  # fmt: skip


def test_a_toml_config_and_the_mle_baseline(tmp_path, capsys):
    toml = tmp_path / "gan.toml"
    toml.write_text('[gan]\nobjective = "mle"\nlr = 0.01\n')
    run = tmp_path / "mle"
    assert cli.main([*_tiny(run, "--figures"), "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "parse rate" in out and "held-out NLL" in out
    config = json.loads((run / "config.json").read_text())
    assert config["objective"] == "mle" and config["lr"] == 0.01
    rows = read_metrics(run / "metrics.jsonl")
    train = [r for r in rows if r["kind"] == "train"]
    assert all("nll" in r and "d_loss" not in r for r in train)
    assert all(r["temperature"] is None for r in train)  # no estimator in play
    final = json.loads((run / "final.json").read_text())
    assert {"parse_rate@0.5", "unique@0.5", "novel@0.5", "parse_rate@1"} <= set(final)
    assert final["parse_rate"] == final["parse_rate@1"] and len(final["samples"]) == 20
    assert (run / "figures" / "curves.png").stat().st_size > 0


def test_pretraining_then_the_schedule_of_the_adversarial_steps(tmp_path):
    run = tmp_path / "pre"
    more = ("--pretrain-steps", "3", "--beta-max", "8", "--beta-steps", "4", "--no-figures")
    assert cli.main(_tiny(run, *more)) == 0
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert "nll" in rows[0] and "d_loss" not in rows[0]  # steps 1-2: maximum likelihood
    assert all("d_loss" in r for r in rows[2:])  # from step 4 on: adversarial
    schedule = GANConfig(beta_max=8.0, beta_steps=4).schedule()
    # a row's temperature is that of its last step, 0-based step - 1, counted after pretraining
    assert [r["temperature"] for r in rows] == [schedule(max(0, r["step"] - 1 - 3)) for r in rows]
    assert rows[-1]["temperature"] == pytest.approx(1 / 8)
    assert math.isfinite(json.loads((run / "final.json").read_text())["heldout_nll"])


# --------------------------------------------------------------------------- the synthetic oracle
def test_a_fixed_length_likelihood_is_normalised_over_every_sequence():
    torch.manual_seed(3)
    gen = gan.Generator(vocab=3, embed=4, hidden=8, end=None).double()
    seqs = torch.tensor(list(itertools.product(range(3), repeat=4)))
    with torch.no_grad():
        total = gen.log_prob(seqs).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64), rtol=1e-12, atol=0)


def test_the_oracle_is_a_function_of_the_seed():
    config = GANConfig(task="oracle", oracle_vocab=5, oracle_hidden=6)
    a, b = gan.build_oracle(config), gan.build_oracle(config)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not any(p.requires_grad for p in a.parameters()) and a.end is None
    other = gan.build_oracle(config.replace(seed=1))
    assert not torch.equal(other.head.weight, a.head.weight)


def test_an_oracle_run_reports_nll_oracle_and_nll_gen(tmp_path, capsys):
    run = tmp_path / "oracle"
    more = ("--task", "oracle", "--oracle-vocab", "6", "--oracle-length", "5", "--no-figures")
    assert cli.main(_tiny(run, *more)) == 0
    assert "NLL_oracle" in capsys.readouterr().out
    final = json.loads((run / "final.json").read_text())
    assert "parse_rate" not in final and {"nll_oracle@0.5", "nll_oracle@1"} <= set(final)
    assert final["nll_oracle"] > 0 and final["nll_gen"] == final["heldout_nll"] / 5
    assert [len(s.split()) for s in final["samples"]] == [5] * 20


# --------------------------------------------------------------------------- the rollout reward
TOY_LENGTH, TOY_VOCAB = 3, 3


def _toy() -> gan.SequenceGAN:
    """A sequence model of 3 tokens of 3 (no end token) and a fixed, sharp "discriminator"
    (float64): every one of its 27 sequences can be enumerated."""
    torch.manual_seed(5)
    model = gan.SequenceGAN(vocab=TOY_VOCAB, end=None, embed=2, hidden=3, disc_hidden=3).double()
    with torch.no_grad():
        model.discriminator.out.weight.mul_(8.0)  # costs of 0.93-1.06: a strong signal
    return model


def _exact(model: gan.SequenceGAN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(probabilities (27,), costs (27,), exact gradient of E[cost])`` by enumeration: every
    sequence (``diagnostics.all_states``), its probability under the generator and its cost."""
    seqs = all_states(TOY_LENGTH, TOY_VOCAB, dtype=torch.float64)
    gen = model.generator
    p = gen.log_prob(seqs.argmax(-1)).exp()
    with torch.no_grad():
        c = F.softplus(-model.discriminator(seqs))
    grads = torch.autograd.grad((p * c).sum(), list(gen.parameters()))
    return p.detach(), c, torch.cat([g.flatten() for g in grads])


@pytest.mark.parametrize("rollouts", [2, 0], ids=["rollout", "sequence"])
def test_the_rollout_reward_gradient_is_unbiased_by_enumeration(rollouts):
    # H0: the mean of R = 200 estimates (each over a batch of 200 sequences) is the exact
    # gradient of E[cost], in every coordinate of the generator's 102 parameters; two-sided
    # z-test at FALSE_ALARM, Bonferroni over the coordinates. sf-ema runs frozen (eval) at a
    # baseline of E[cost], so the baseline is in play, the same for every draw, and the
    # variance low enough that the test has power: measured, the gradient is 217 standard
    # errors from zero, and a signal one token late (token t+1 weighted by the rollouts of the
    # prefix through t) 57 standard errors from the exact gradient.
    model = _toy()
    p, c, exact = _exact(model)
    est = estimators.build("sf-ema", event_shape=(1, TOY_VOCAB))
    est.running_mean.fill_(0.1 * float((p * c).sum()))
    est.num_updates.fill_(1)  # baseline running_mean / (1 - 0.9) = E[cost]
    est.eval()
    params = list(model.generator.parameters())
    g = torch.Generator().manual_seed(11)
    draws = []
    for _ in range(200):
        cost, _ = gan.generator_cost(
            model, est, 200, generator=g, length=TOY_LENGTH, rollouts=rollouts
        )
        grads = torch.autograd.grad(cost.mean(), params)
        draws.append(torch.cat([x.flatten() for x in grads]))
    samples = torch.stack(draws)
    assert_close_mean(samples, exact, false_alarm=FALSE_ALARM)
    assert_mean_differs(samples, 0.0, level=FALSE_ALARM)  # power: told from zero


class _Recording(estimators.ScoreFunction):
    """``sf`` that keeps the learning signal each call saw (innermost token first)."""

    def forward(self, logits, f, *, generator=None):
        result = super().forward(logits, f, generator=generator)
        self.seen.append(result.value)
        return result


def test_the_rollout_signal_has_its_mean_and_the_variance_of_n_fresh_completions():
    # Token t's rollout signal is the mean cost of N completions of y_{1:t} drawn from the
    # generator: E = E[C], Var = Var Q_t + E Var(C | y_{1:t}) / N (Q_t = E[C | y_{1:t}]), both
    # by enumeration; the sequence signal is C itself, for every token. Two-sided z-tests of the
    # mean and of the mean squared deviation at FALSE_ALARM (Bonferroni over the 6 numbers; the
    # last token's signal is C, of variance Var C).
    n = 4
    model = _toy()
    p, c, _ = _exact(model)
    mean = float((p * c).sum())
    by_prefix = [  # Q_t at each sequence's prefix of t tokens, t = 1, 2; Q_3 = C
        torch.stack([(p * c)[idx].sum() / p[idx].sum() for idx in _groups(t)])[_group_of(t)]
        for t in (1, 2)
    ]
    second = float((p * c * c).sum())
    var = [
        float((p * q * q).sum()) - mean**2 + (second - float((p * q * q).sum())) / n
        for q in by_prefix
    ]
    assert all(v < second - mean**2 for v in var)  # the reduction, a certainty here (N = 4)
    est = _Recording()
    est.seen = []
    gan.generator_cost(
        model, est, 20_000, generator=torch.Generator().manual_seed(3), length=TOY_LENGTH,
        rollouts=n,
    )  # fmt: skip
    whole, second_token, first_token = est.seen
    signals = torch.stack([first_token, second_token, whole], 1)  # (draws, t = 1, 2, 3)
    stacked = torch.cat([signals, (signals - mean) ** 2], 1)
    expected = torch.tensor([mean] * 3 + var + [second - mean**2])
    assert_close_mean(stacked, expected, false_alarm=FALSE_ALARM)
    est.seen = []
    gan.generator_cost(model, est, 50, generator=torch.Generator().manual_seed(3), length=3)
    assert all(torch.equal(s, est.seen[0]) for s in est.seen)  # the sequence reward: C for all


def _groups(t: int) -> list[torch.Tensor]:
    """Indices of the 27 enumerated sequences sharing each prefix of ``t`` tokens."""
    seqs = all_states(TOY_LENGTH, TOY_VOCAB).argmax(-1)
    keys = [tuple(s[:t].tolist()) for s in seqs]
    order = sorted(set(keys))
    return [torch.tensor([i for i, k in enumerate(keys) if k == key]) for key in order]


def _group_of(t: int) -> torch.Tensor:
    seqs = all_states(TOY_LENGTH, TOY_VOCAB).argmax(-1)
    keys = [tuple(s[:t].tolist()) for s in seqs]
    order = sorted(set(keys))
    return torch.tensor([order.index(k) for k in keys])


def test_the_rollout_reward_refuses_a_pathwise_estimator_and_bad_counts(tmp_path, capsys):
    model = _toy()
    gs = estimators.build("gs", event_shape=(1, TOY_VOCAB), temperature=1.0)
    with pytest.raises(ValueError, match="'gs' does not declare learning_signal"):
        gan.generator_cost(model, gs, 2, generator=torch.Generator(), length=3, rollouts=2)
    sf = estimators.build("sf", event_shape=(1, TOY_VOCAB))
    with pytest.raises(ValueError, match="rollouts must be an int >= 0, got -1"):
        gan.generator_cost(model, sf, 2, generator=torch.Generator(), length=3, rollouts=-1)
    with pytest.raises(ConfigError, match="reward='rollout' needs an estimator"):
        GANConfig(estimator="st-gs", reward="rollout").validate()
    for changes, match in [
        ({"reward": "token"}, "reward must be one of"),
        ({"rollouts": 0}, "rollouts must be >= 1"),
        ({"d_steps": 0}, "d_steps must be >= 1"),
    ]:
        with pytest.raises(ConfigError, match=match):
            GANConfig().replace(**changes)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["gan", "--estimator", "gs", "--reward", "rollout", "--run-dir", str(run)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "gumbel-softmax: error: " in err and "learning_signal" in err
    assert "Traceback" not in err and not run.exists()


# --------------------------------------------------------------------------- alternating updates
def _oracle_run(run, *more):
    return [
        "gan", "--task", "oracle", "--oracle-vocab", "5", "--oracle-length", "4",
        "--n-train", "64", "--n-held-out", "16", "--hidden", "8", "--embed", "4",
        "--disc-hidden", "8", "--batch-size", "16", "--epochs", "3", "--pretrain-steps", "2",
        "--log-every", "1", "--eval-every", "4", "--checkpoint-every", "3",
        "--eval-strings", "16", "--sample-temperatures", "1", "--no-progress", "--no-figures",
        "--run-dir", str(run), *more,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "more",
    [("--estimator", "sf-ema", "--reward", "rollout", "--rollouts", "3"), ("--d-steps", "3")],
    ids=["rollout", "d_steps"],
)
def test_rollouts_and_d_steps_resume_bit_for_bit(tmp_path, more):
    # 12 steps (2 of them maximum likelihood); killed at step 7, whose checkpoint is lost, so
    # the second session resumes from step 6: the same rows, final record and weights.
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(_oracle_run(whole, *more)) == 0
        assert cli.main(_oracle_run(resumed, *more, "--max-steps", "7")) == 0
        (resumed / "checkpoints" / "checkpoint-7.pt").unlink()
        (resumed / "final.json").unlink()
        assert cli.main(_oracle_run(resumed, *more)) == 0
    finally:
        torch.set_num_threads(threads)
    assert read_metrics(resumed / "metrics.jsonl") == read_metrics(whole / "metrics.jsonl")
    assert (resumed / "final.json").read_text() == (whole / "final.json").read_text()
    a = load_checkpoint(whole / "checkpoints" / "checkpoint-12.pt")
    b = load_checkpoint(resumed / "checkpoints" / "checkpoint-12.pt")
    for owner in a["modules"]:
        for key, value in a["modules"][owner].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b["modules"][owner][key]), (owner, key)
    # d_steps = k: k discriminator updates per generator update (Adam's per-parameter step
    # counts: the discriminator's only in the 10 adversarial steps, the generator's in all 12)
    k = 3 if "--d-steps" in more else 1
    model = gan.SequenceGAN(vocab=5, end=None, embed=4, hidden=8, disc_hidden=8)
    names = [n for n, _ in model.named_parameters()]
    state = a["optimizer"]["state"]
    for i, name in enumerate(names):
        expected = 10 * k if name.startswith("discriminator.") else 12
        assert int(state[i]["step"]) == expected, name
