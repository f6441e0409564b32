r"""The grammar task of the sequence GAN (issue 13; after Kusner & Hernández-Lobato 2016,
arXiv:1611.04051): arithmetic expressions over ``x`` and ``y``, at most 15 tokens, by

.. math:: E \to E + E \mid E - E \mid E * E \mid E / E \mid ( E ) \mid x \mid y .

A string is *valid* when it parses by this grammar and has 1 to :data:`MAX_TOKENS` tokens. The
grammar is ambiguous but its language is that of the unambiguous
:math:`E \to A\,(o\,A)^*`, :math:`A \to x \mid y \mid ( E )`, :math:`o \in \{+,-,*,/\}`, which
:func:`parses` recognises by recursive descent (the tests compare it, on every string of up to
six tokens, with :func:`derivable`, which enumerates the derivations of the grammar itself).

The data. A probabilistic version of the grammar whose rule probabilities depend on the depth
:math:`d` of the nonterminal (a PCFG with one nonterminal per depth): a terminal (``x`` or
``y``, equally likely) with probability :math:`t_d = \min(1, a + b\,d)`, else ``( E )`` with
probability :math:`p_{()}` and a binary operator (each of the four equally likely) otherwise;
:math:`a = 0.02`, :math:`b = 0.2`, :math:`p_{()} = 0.1`, conditioned on at most 15 tokens by
rejection. The constant-probability PCFG conditioned on 15 tokens is dominated by ``x`` and
``y`` alone (about 60% of the draws); this one has a mean length of about 10 tokens and about
90% distinct strings in 1,000 draws, so unique fraction and novelty mean something. The
training (10,000 strings) and held-out (1,000) sets are draws of it with Python's
:class:`random.Random` seeded by ``(seed, split)``: the same strings on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

__all__ = [
    "EOS",
    "MAX_TOKENS",
    "OPERATORS",
    "TOKENS",
    "VOCAB",
    "GrammarData",
    "decode",
    "derivable",
    "encode",
    "grammar_data",
    "is_valid",
    "parses",
    "sample_expression",
]

#: The terminals of the grammar, in the order of their indices.
TOKENS: tuple[str, ...] = ("x", "y", "+", "-", "*", "/", "(", ")")
OPERATORS = frozenset("+-*/")
#: The end token's index (it ends a string and pads it to the model's length).
EOS = len(TOKENS)
#: Token classes of the models: the terminals and the end token.
VOCAB = len(TOKENS) + 1
MAX_TOKENS = 15
_INDEX = {t: i for i, t in enumerate(TOKENS)}
# The depth-dependent PCFG (module docstring).
_TERMINAL_AT_ROOT, _TERMINAL_PER_DEPTH, _PARENTHESES = 0.02, 0.2, 0.1


def parses(tokens: Sequence[str]) -> bool:
    """Whether ``tokens`` is a sentence of the grammar (any length; no length limit)."""
    pos = 0

    def expression() -> bool:
        nonlocal pos
        if not atom():
            return False
        while pos < len(tokens) and tokens[pos] in OPERATORS:
            pos += 1
            if not atom():
                return False
        return True

    def atom() -> bool:
        nonlocal pos
        if pos >= len(tokens):
            return False
        t = tokens[pos]
        pos += 1
        if t in ("x", "y"):
            return True
        if t != "(" or not expression() or pos >= len(tokens) or tokens[pos] != ")":
            return False
        pos += 1
        return True

    return expression() and pos == len(tokens)


def is_valid(tokens: Sequence[str]) -> bool:
    """A valid string: it parses and has 1 to :data:`MAX_TOKENS` tokens."""
    return 0 < len(tokens) <= MAX_TOKENS and parses(tokens)


def derivable(max_tokens: int) -> set[tuple[str, ...]]:
    r"""Every sentence of at most ``max_tokens`` tokens, by the grammar's derivations: with
    :math:`S_n` the sentences of n tokens, :math:`S_1 = \{x, y\}`,
    :math:`S_n = \{(s) : s \in S_{n-2}\} \cup \{a\,o\,b : a \in S_i, b \in S_{n-1-i}\}`."""
    by_length: list[set[tuple[str, ...]]] = [set(), {("x",), ("y",)}]
    for n in range(2, max_tokens + 1):
        s = {("(", *e, ")") for e in by_length[n - 2]}
        for i in range(1, n - 1):
            for a in by_length[i]:
                for b in by_length[n - 1 - i]:
                    s.update((*a, o, *b) for o in "+-*/")
        by_length.append(s)
    return set().union(*by_length[: max_tokens + 1])


def sample_expression(rng: random.Random, *, max_tokens: int = MAX_TOKENS) -> tuple[str, ...]:
    """One draw of the depth-dependent PCFG (module docstring) conditioned on at most
    ``max_tokens`` tokens (a draw that grows past it is abandoned and drawn again)."""

    class _TooLong(Exception):
        pass

    out: list[str] = []

    def expand(depth: int) -> None:
        terminal = min(1.0, _TERMINAL_AT_ROOT + _TERMINAL_PER_DEPTH * depth)
        r = rng.random()
        if r < terminal:
            out.append(rng.choice("xy"))
        elif r < terminal + (1 - terminal) * _PARENTHESES:
            out.append("(")
            expand(depth + 1)
            out.append(")")
        else:
            expand(depth + 1)
            out.append(rng.choice("+-*/"))
            expand(depth + 1)
        if len(out) > max_tokens:
            raise _TooLong

    while True:
        out.clear()
        try:
            expand(0)
        except _TooLong:
            continue
        return tuple(out)


@dataclass(frozen=True)
class GrammarData:
    """The training and held-out strings (tuples of tokens) and the set of training strings."""

    train: tuple[tuple[str, ...], ...]
    held_out: tuple[tuple[str, ...], ...]
    seed: int

    @property
    def train_set(self) -> frozenset[tuple[str, ...]]:
        return _as_set(self.train)


@cache
def _as_set(strings: tuple[tuple[str, ...], ...]) -> frozenset[tuple[str, ...]]:
    return frozenset(strings)


@cache
def grammar_data(seed: int = 0, n_train: int = 10_000, n_held_out: int = 1_000) -> GrammarData:
    """The data set of ``seed``: ``n_train`` and ``n_held_out`` independent draws of the PCFG
    (module docstring), each split from its own :class:`random.Random` seeded by
    ``f"{seed}/{split}"`` (about 0.3 s; cached).

    Raises:
        ValueError: a negative seed or a size below 1.
    """
    if seed < 0 or n_train < 1 or n_held_out < 1:
        raise ValueError(
            f"seed must be >= 0 and the sizes >= 1, got seed={seed}, n_train={n_train}, "
            f"n_held_out={n_held_out}"
        )

    def draws(split: str, n: int) -> tuple[tuple[str, ...], ...]:
        rng = random.Random(f"{seed}/{split}")
        return tuple(sample_expression(rng) for _ in range(n))

    return GrammarData(draws("train", n_train), draws("held-out", n_held_out), seed)


def encode(strings: Iterable[Sequence[str]], length: int = MAX_TOKENS + 1) -> Tensor:
    """Strings -> token indices ``(n, length)`` (int64), each ended and padded by :data:`EOS`.

    Raises:
        ValueError: a string with an unknown token, or of ``length`` tokens or more.
    """
    rows = []
    for s in strings:
        if len(s) >= length:
            raise ValueError(f"a string of {len(s)} tokens does not fit length={length}: {s!r}")
        try:
            rows.append([_INDEX[t] for t in s] + [EOS] * (length - len(s)))
        except KeyError as err:
            raise ValueError(f"unknown token {err.args[0]!r} in {s!r}; tokens: {TOKENS}") from None
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, length)


def decode(indices: Tensor) -> list[tuple[str, ...]]:
    """Token indices ``(n, T)`` -> strings: the tokens before the first :data:`EOS` (all T when
    there is none, which is then too long to be valid when T > :data:`MAX_TOKENS`)."""
    out = []
    for row in indices.tolist():
        end = row.index(EOS) if EOS in row else len(row)
        out.append(tuple(TOKENS[i] for i in row[:end]))
    return out
