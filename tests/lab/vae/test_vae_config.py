import pytest

from gumbel_softmax.lab.config import HELP, ConfigError, VAEConfig, load_toml


def test_defaults_are_valid_and_documented():
    c = VAEConfig().validate()
    assert set(HELP) == set(c.to_dict())
    assert VAEConfig.from_dict(c.to_dict()) == c


def test_bernoulli_defaults_to_the_papers_200_bits():
    c = VAEConfig.from_dict({"latent": "bernoulli"})
    assert (c.n_latent, c.n_classes) == (200, 2)
    assert VAEConfig.from_dict({"latent": "bernoulli", "n_latent": 30}).n_latent == 30


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"learning_rate": 0.1}, r"unknown config key\(s\) \['learning_rate'\]"),
        ({"lr": "fast"}, "lr must be a float, got 'fast'"),
        ({"epochs": 2.5}, "epochs must be an int"),
        ({"epochs": True}, "epochs must be an int"),
        ({"figures": 1}, "figures must be a bool"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": float("nan")}, "lr must be positive"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"max_steps": -1}, "max_steps must be >= 0"),
        ({"latent": "gaussian"}, "latent must be one of"),
        ({"dataset": "cifar"}, "dataset must be one of"),
        ({"estimator": "nope"}, r"estimator must be one of \[.*'st-gs'"),
        ({"temperature": "hot"}, "temperature must be one of"),
        ({"latent": "bernoulli", "n_classes": 10}, "n_classes must be 2"),
        ({"momentum": 1.0}, "momentum must be in"),
        ({"lr_decay": 0.0}, "lr_decay must be in"),
        ({"anneal_rate": -1.0}, "anneal_rate must be >= 0"),
        ({"device": "gpu0"}, "device must be a torch device"),
        ({"run_dir": ""}, "run_dir must be a non-empty"),
        ({"hidden": "512,,256"}, "hidden must be comma-separated positive ints"),
        ({"hidden": "0"}, "hidden must be comma-separated positive ints"),
    ],
)
def test_bad_values_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        VAEConfig.from_dict(data)


def test_toml(tmp_path):
    flat = tmp_path / "flat.toml"
    flat.write_text('estimator = "gs"\nlr = 3e-4\nepochs = 2\n')
    assert VAEConfig.from_dict(load_toml(flat)).estimator == "gs"
    table = tmp_path / "table.toml"
    table.write_text('[vae]\nlatent = "bernoulli"\n')
    assert VAEConfig.from_dict(load_toml(table)).n_latent == 200
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "absent.toml")


def test_hidden_sizes():
    assert VAEConfig().hidden_sizes() == (512, 256)
    assert VAEConfig(hidden="64").hidden_sizes() == (64,)
