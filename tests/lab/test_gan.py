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
from gumbel_softmax.lab import cli, gan, grammar
from gumbel_softmax.lab.config import ConfigError, GANConfig
from gumbel_softmax.lab.records import read_metrics
from gumbel_softmax.testing import assert_categorical

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
