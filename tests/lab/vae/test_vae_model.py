import pytest
import torch

from gumbel_softmax.lab.models import DiscreteVAE


def test_categorical_shapes():
    m = DiscreteVAE(n_latent=20, n_classes=10)
    x = torch.rand(4, 784)
    logits = m.encode(x)
    assert logits.shape == (4, 20, 10)
    z = torch.nn.functional.one_hot(logits.argmax(-1), 10).float().expand(3, 4, 20, 10)
    assert m.reconstruction_nll(z, x).shape == (3, 4)
    assert m.kl(logits).shape == (4,)
    assert m.log_joint_minus_q(z, x, logits).shape == (3, 4)


def test_bernoulli_uses_two_class_logits():
    m = DiscreteVAE(latent="bernoulli", n_latent=200, n_classes=2)
    logits = m.encode(torch.rand(5, 784))
    assert logits.shape == (5, 200, 2)
    assert torch.equal(logits[..., 1], torch.zeros(5, 200))  # (ℓ, 0): ℓ is the log-odds
    assert m.decoder[0].in_features == 200


def test_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(5)
    m = DiscreteVAE(n_latent=3, n_classes=4, hidden=(8,), prior="learned", image_dim=6)
    with torch.no_grad():
        m.prior_logits.normal_(generator=gen)
    logits = torch.randn(2, 3, 4, generator=gen)
    q = torch.distributions.Categorical(logits=logits)
    p = torch.distributions.Categorical(logits=m.prior_logits)
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(m.kl(logits), expected)


@pytest.mark.parametrize("gap", [50.0, 200.0, 1e4])
def test_kl_gradient_is_finite_for_confident_posteriors(gap):
    # q underflows to exactly 0 on some classes once the logit gap exceeds ~104 in float32.
    m = DiscreteVAE(n_latent=2, n_classes=3, hidden=(4,), image_dim=2, prior="learned")
    logits = torch.tensor([[[0.0, gap, 5.0], [-gap, 0.0, gap]]], requires_grad=True)
    kl = m.kl(logits)
    kl.sum().backward()
    assert torch.isfinite(kl).all() and torch.isfinite(logits.grad).all()
    assert torch.isfinite(m.prior_logits.grad).all()


def test_uniform_prior_kl_is_zero_at_uniform_posterior():
    m = DiscreteVAE(n_latent=2, n_classes=5, hidden=(4,), image_dim=3)
    assert m.kl(torch.zeros(1, 2, 5)).abs().max() < 1e-6
    assert m.prior_logits is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latent": "gaussian"}, "latent"),
        ({"prior": "flat"}, "prior"),
        ({"n_latent": 0}, "n_latent"),
        ({"n_classes": 1}, "n_classes"),
        ({"latent": "bernoulli", "n_classes": 3}, "n_classes"),
        ({"hidden": ()}, "hidden"),
    ],
)
def test_model_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiscreteVAE(**kwargs)
