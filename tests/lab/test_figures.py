"""The run figures (gumbel_softmax.lab.figures): they are written as PNG files, refuse bad input
with errors naming it, and the latent-code figure shows what each variable changes."""

from __future__ import annotations

import pytest
import torch

from gumbel_softmax.lab.figures import LatentSweep, draw_all, draw_latents, latent_sweep
from gumbel_softmax.lab.models import DiscreteVAE

PNG = b"\x89PNG\r\n\x1a\n"
D = 784
# Pixel means in [0, 1] computed by float32 matmuls of different batch positions may differ in
# their last bits: 64 ulps of 1.0. The changes the tests look for are above 1e-3.
ROUNDING = 64 * torch.finfo(torch.float32).eps


def small_vae(latent: str = "categorical", n: int = 5, k: int = 4, seed: int = 0) -> DiscreteVAE:
    torch.manual_seed(seed)
    return DiscreteVAE(latent=latent, n_latent=n, n_classes=k, hidden=(16, 8))  # type: ignore[arg-type]


def images(count: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(count, D, generator=torch.Generator().manual_seed(seed)).round()


def only_variable(model: DiscreteVAE, keep: int) -> DiscreteVAE:
    """The decoder made to read latent variable ``keep`` only (the first layer's other inputs
    zeroed), so the true effect of every other variable on the picture is exactly zero."""
    first = model.decoder[0]
    per = model.n_classes if model.latent == "categorical" else 1
    with torch.no_grad():
        mask = torch.zeros_like(first.weight)
        mask[:, keep * per : (keep + 1) * per] = 1
        first.weight.mul_(mask)
        model.decoder[-1].weight.mul_(20)  # a visible change of the pixel means
    return model


METRICS = [
    {"kind": "train", "step": s, "loss": 200.0 - s, "kl": 5.0, "temperature": 1.0} for s in (1, 2)
] + [{"kind": "eval", "split": "valid", "step": 2, "neg_elbo": 199.0, "iw_bound": 198.0, "m": 2}]


@pytest.mark.parametrize(("latent", "k"), [("categorical", 4), ("bernoulli", 2)])
@pytest.mark.parametrize("count", [3, 20])  # fewer than one row of 8 reconstructions, and more
def test_draw_all_writes_every_figure_as_png(tmp_path, latent, k, count):
    paths = draw_all(small_vae(latent, k=k), METRICS, images(count), tmp_path / "fig", seed=0)
    names = ["curves.png", "reconstructions.png", "prior_samples.png", "latents.png"]
    assert [p.name for p in paths] == names
    for p in paths:
        assert p.exists() and p.read_bytes()[:8] == PNG


def test_categorical_sweep_has_a_row_per_variable_and_a_column_per_class():
    model = small_vae("categorical", n=5, k=4).eval()
    s = latent_sweep(model, images(1)[0])
    assert s.pictures.shape == s.change.shape == (5, 4, D)
    assert sorted(s.variables) == list(range(5))
    assert s.row_labels == [f"z{v}" for v in s.variables] and s.col_labels == ["0", "1", "2", "3"]
    # The framed cell of each row is the base code itself: no change, exactly.
    assert len(s.unchanged) == 5
    for r, c in s.unchanged:
        assert float(s.change[r, c].abs().max()) <= ROUNDING
    # The old figure's cells all showed the same picture: here every class of every variable
    # decodes to a picture of its own (the untrained decoder reads every input).
    # (The framed cells all hold the base code: they are the one picture they share.)
    cells = [s.base] + [
        s.pictures[r, c] for r in range(5) for c in range(4) if (r, c) not in s.unchanged
    ]
    stacked = torch.stack(cells)
    distance = (stacked[:, None] - stacked[None]).abs().amax(-1)
    assert len(cells) == 16 and bool((distance + torch.eye(16) > 1e-3).all())
    # Rows are sorted by effect, largest first.
    effect = s.change.abs().sum((1, 2))
    assert bool((effect[:-1] >= effect[1:]).all())


@pytest.mark.parametrize("latent", ["categorical", "bernoulli"])
def test_sweep_finds_the_one_variable_the_decoder_reads(latent):
    k = 4 if latent == "categorical" else 2
    model = only_variable(small_vae(latent, n=6, k=k), keep=3).eval()
    s = latent_sweep(model, images(1)[0])
    assert s.variables[0] == 3
    if latent == "categorical":
        assert float(s.change[1:].abs().max()) <= ROUNDING  # the others change nothing
        others = [c for c in range(k) if (0, c) not in s.unchanged]
        assert all(float(s.change[0, c].abs().max()) > 1e-3 for c in others)
    else:
        assert s.pictures.shape == (1, 6, D) and s.row_labels == ["flipped"]
        assert float(s.change[0, 1:].abs().max()) <= ROUNDING
        assert float(s.change[0, 0].abs().max()) > 1e-3
        bit = int(model.encode(images(1))[0, 3].argmax() == 0)  # class 0 is "bit on"
        assert s.col_labels[0] == f"3\n{bit}→{1 - bit}"


def test_sweep_shows_at_most_max_variables():
    s = latent_sweep(small_vae("bernoulli", n=30, k=2).eval(), images(1), max_variables=7)
    assert s.pictures.shape == (1, 7, D) and len(s.col_labels) == 7


def test_draw_latents_writes_a_png(tmp_path):
    for latent, k in (("categorical", 3), ("bernoulli", 2)):
        s = latent_sweep(small_vae(latent, k=k).eval(), images(1))
        path = draw_latents(s, tmp_path / f"{latent}.png")
        assert path.read_bytes()[:8] == PNG


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda m, d: draw_all(m, [], images(3)[:0], d, seed=0),
            ValueError,
            r"images must have shape \(n, 784\)",
        ),
        (
            lambda m, d: draw_all(m, [], images(3)[:, :100], d, seed=0),
            ValueError,
            "images must have shape",
        ),
        (lambda m, d: draw_all(m, [], images(3) * 2, d, seed=0), ValueError, r"values in \[0, 1\]"),
        (lambda m, d: draw_all(m, [], images(3).long(), d, seed=0), TypeError, "floating-point"),
        (lambda m, d: draw_all(m, [], [[0.0] * D], d, seed=0), TypeError, "images must be"),
        (
            lambda m, d: draw_all(object(), [], images(3), d, seed=0),
            TypeError,
            "model must be a DiscreteVAE",
        ),
        (
            lambda m, d: latent_sweep(m, images(2)),
            ValueError,
            r"image must have shape \(784,\) or \(1, 784\)",
        ),
        (lambda m, d: latent_sweep(m, torch.full((D,), float("nan"))), ValueError, "NaN"),
        (
            lambda m, d: latent_sweep(m, images(1), max_variables=0),
            ValueError,
            "max_variables must be >= 1",
        ),
        (
            lambda m, d: latent_sweep(m, images(1), max_variables=2.0),
            TypeError,
            "max_variables must be an int",
        ),
        (lambda m, d: draw_latents("sweep", d / "x.png"), TypeError, "sweep must be a LatentSweep"),
        (
            lambda m, d: draw_latents(latent_sweep(m, images(1)), d / "missing" / "x.png"),
            ValueError,
            "does not exist",
        ),
    ],
)
def test_bad_input_is_refused_by_name(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(small_vae().eval(), tmp_path)


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        draw_all(small_vae(), [], images(3), path, seed=0)


def test_latent_sweep_result_is_typed():
    assert isinstance(latent_sweep(small_vae().eval(), images(1)), LatentSweep)
