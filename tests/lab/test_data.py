"""gumbel_softmax.lab.data: readers, verified downloads (against a local HTTP server), loaders."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from gumbel_softmax.lab import data
from gumbel_softmax.lab.data import _datasets, _formats

REPO = Path(__file__).resolve().parents[2]
SHARED_CANDIDATES = (Path("/work/shared/data"), REPO.parent / "shared" / "data")
SHARED = next((p for p in SHARED_CANDIDATES if (p / "mnist").is_dir()), None)
GREY_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary files an interrupted download could leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# ---------------------------------------------------------------------------------------------
# A local HTTP server on 127.0.0.1 with scripted answers per path.


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    cut: bool = False  # announce len(body) bytes but send half of them, then close


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix}/"


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            route = state.routes.get(self.path, Route(status=404))
            self.send_response(route.status)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if route.status == 200:
                self.wfile.write(route.body[: len(route.body) // 2] if route.cut else route.body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------------
# Tiny but valid data files, made here.


def idx_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    path = tmp_path / "scratch.idx.gz"
    _formats.write_idx(path, array)
    raw = path.read_bytes()
    path.unlink()
    return raw


def tiny_grey(tmp_path: Path, n_train: int = data.GREY_VALID_SIZE + 7, n_test: int = 5):
    """Four gzipped IDX files; image i is filled with i % 256 so its origin can be checked."""
    rng = np.random.default_rng(0)
    train = (np.arange(n_train) % 256).astype(np.uint8)[:, None, None] * np.ones((28, 28), np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    arrays = {
        GREY_FILES[0]: train,
        GREY_FILES[1]: (np.arange(n_train) % 10).astype(np.uint8),
        GREY_FILES[2]: test,
        GREY_FILES[3]: rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    return arrays, {name: idx_bytes(a, tmp_path) for name, a in arrays.items()}


def tiny_amat() -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    rng = np.random.default_rng(1)
    images = {
        s: rng.integers(0, 2, size=(n, 28, 28), dtype=np.uint8)
        for s, n in (("train", 4), ("valid", 2), ("test", 3))
    }
    texts = {
        f"binarized_mnist_{s}.amat": b"".join(_formats.iter_amat(x)) for s, x in images.items()
    }
    return images, texts


def publish(monkeypatch, server: Server, dataset: str, files: dict[str, bytes], mirrors=("m1",)):
    """Serve ``files`` from the last mirror, and make them the published checksums."""
    for name, raw in files.items():
        server.routes[f"/{mirrors[-1]}/{name}"] = Route(raw)
    monkeypatch.setitem(data.CHECKSUMS, dataset, {n: (sha256(raw),) for n, raw in files.items()})
    monkeypatch.setitem(data.MIRRORS, dataset, tuple(server.url(m) for m in mirrors))


# ---------------------------------------------------------------------------------------------
# Formats.


def test_idx_round_trip_and_magic(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    _formats.write_idx(tmp_path / "x.gz", images)
    _formats.write_idx(tmp_path / "y.gz", labels)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.gz", expected_magic=2051), images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "y.gz", expected_magic=2049), labels)
    with pytest.raises(ValueError, match="magic number is 2049, expected 2051"):
        data.read_idx(tmp_path / "y.gz", expected_magic=2051)


def test_idx_rejects_bad_magic_truncation_and_corrupt_gzip(tmp_path):
    header = bytes([0, 0, 0x08, 1]) + (5).to_bytes(4, "big")
    cases = {
        "bad.gz": (b"\x12\x34\x08\x01" + (5).to_bytes(4, "big") + bytes(5), "bad magic"),
        "short.gz": (header + bytes(4), "truncated IDX file"),
        "long.gz": (header + bytes(6), "over-long IDX file"),
        "nohead.gz": (bytes([0, 0, 0x08, 3, 0, 0]), "truncated IDX header"),
    }
    for name, (raw, message) in cases.items():
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(raw)
        with pytest.raises(ValueError, match=message):
            data.read_idx(tmp_path / name)
    good = gzip.compress(header + bytes(5))
    (tmp_path / "cut.gz").write_bytes(good[:-6])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        data.read_idx(tmp_path / "cut.gz")
    flipped = bytearray(good)
    flipped[-8] ^= 0xFF  # inside the CRC-32 trailer
    (tmp_path / "crc.gz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        data.read_idx(tmp_path / "crc.gz")


def test_amat_round_trip_and_layout_errors():
    images, texts = tiny_amat()
    raw = texts["binarized_mnist_train.amat"]
    np.testing.assert_array_equal(_formats.parse_amat(raw), images["train"])
    assert _formats.amat_sha256(images["train"]) == sha256(raw)
    with pytest.raises(ValueError, match="whole number"):
        _formats.parse_amat(raw[:-1])
    with pytest.raises(ValueError, match="separated by single spaces"):
        _formats.parse_amat(raw.replace(b"1 ", b"2 ", 1))
    with pytest.raises(ValueError, match="separated by single spaces"):
        _formats.parse_amat(raw.replace(b" ", b"\t", 1))


# ---------------------------------------------------------------------------------------------
# Verified, atomic downloads.


def test_fetch_good_file_once(server, tmp_path):
    server.routes["/a/f.bin"] = Route(b"payload")
    dest = tmp_path / "cache" / "f.bin"
    assert data.fetch_file([server.url("a") + "f.bin"], dest, {sha256(b"payload")}) is True
    assert dest.read_bytes() == b"payload"
    assert data.fetch_file([server.url("a") + "f.bin"], dest, {sha256(b"payload")}) is False
    assert server.hits == ["/a/f.bin"]  # the verified copy was kept, not fetched again
    assert leftovers(dest.parent) == []


def test_fetch_404_then_good_mirror(server, tmp_path):
    server.routes["/good/f.bin"] = Route(b"payload")
    urls = [server.url("missing") + "f.bin", server.url("good") + "f.bin"]
    assert data.fetch_file(urls, tmp_path / "f.bin", {sha256(b"payload")}, backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == b"payload"
    assert server.hits == ["/missing/f.bin", "/good/f.bin"]  # a 404 is not retried


@pytest.mark.parametrize(
    ("route", "tries"),
    [
        (Route(b"pAyload"), 1),  # corrupted: same length, wrong bytes; retrying cannot help
        (Route(b"pay"), 1),  # truncated on the server, honest length: wrong sha256
        (Route(b"payload", cut=True), 3),  # cut in transit: worth retrying
        (Route(b"", status=503), 3),
    ],
    ids=["corrupted", "truncated-file", "cut-transfer", "http-503"],
)
def test_fetch_bad_mirror_then_good(server, tmp_path, route, tries):
    server.routes["/bad/f.bin"] = route
    server.routes["/good/f.bin"] = Route(b"payload")
    urls = [server.url("bad") + "f.bin", server.url("good") + "f.bin"]
    assert data.fetch_file(urls, tmp_path / "f.bin", {sha256(b"payload")}, retries=3, backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == b"payload"
    assert server.hits == ["/bad/f.bin"] * tries + ["/good/f.bin"]
    assert leftovers(tmp_path) == []


def test_fetch_replaces_corrupt_cached_file(server, tmp_path):
    server.routes["/a/f.bin"] = Route(b"payload")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"payl")  # a partial file from an earlier, non-atomic tool
    assert data.fetch_file([server.url("a") + "f.bin"], dest, {sha256(b"payload")}) is True
    assert dest.read_bytes() == b"payload"


def test_fetch_all_mirrors_fail_leaves_nothing_partial(server, tmp_path):
    server.routes["/a/f.bin"] = Route(b"payload", cut=True)
    server.routes["/b/f.bin"] = Route(b"tampered")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old bytes")
    urls = [server.url("a") + "f.bin", server.url("b") + "f.bin", server.url("c") + "f.bin"]
    with pytest.raises(data.DownloadError, match="every mirror failed") as info:
        data.fetch_file(urls, dest, {sha256(b"payload")}, retries=2, backoff=0)
    message = str(info.value)
    for expected in (
        "/a/f.bin (try 2): transfer cut short",
        "/b/f.bin (try 1): sha256",
        "HTTP 404",
    ):
        assert expected in message
    assert dest.read_bytes() == b"old bytes"  # untouched: never replaced by a partial file
    assert leftovers(tmp_path) == []


def test_fetch_unreachable_host_and_bad_arguments(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(data.DownloadError, match="URLError"):
        data.fetch_file([f"http://127.0.0.1:{port}/f"], tmp_path / "f", {"0" * 64}, backoff=0)
    assert list(tmp_path.iterdir()) == []
    for kwargs, message in [
        ({"retries": 0}, "retries must be at least 1, got 0"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"backoff": -1.0}, "backoff must be non-negative"),
    ]:
        with pytest.raises(ValueError, match=message):
            data.fetch_file(["http://127.0.0.1:9/f"], tmp_path / "f", {"0" * 64}, **kwargs)


# ---------------------------------------------------------------------------------------------
# Data sets from a data directory.


def test_grey_download_then_load(server, tmp_path, monkeypatch):
    arrays, files = tiny_grey(tmp_path)
    publish(monkeypatch, server, "mnist", files, mirrors=("dead", "live"))
    folder = data.download("mnist", tmp_path / "d")
    assert folder == tmp_path / "d" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(GREY_FILES)
    splits = data.load_dataset("mnist", data_dir=tmp_path / "d")
    n = len(arrays[GREY_FILES[0]]) - data.GREY_VALID_SIZE
    assert (splits.train.shape, splits.valid.shape, splits.test.shape) == (
        (n, 784),
        (data.GREY_VALID_SIZE, 784),
        (5, 784),
    )
    assert splits.train.dtype == torch.float32 and not splits.binarized
    # valid is the LAST 10,000 training images: image i has every pixel i % 256.
    pixel = (splits.valid[:, 0] * 255).round().long().tolist()
    assert pixel == [i % 256 for i in range(n, n + data.GREY_VALID_SIZE)]
    assert (splits.train[:, 0] * 255).round().long().tolist() == [i % 256 for i in range(n)]
    assert splits.train.max() <= 1.0 and splits.train.min() >= 0.0
    np.testing.assert_array_equal(
        splits.test.numpy() * 255.0, arrays[GREY_FILES[2]].reshape(5, 784)
    )
    assert splits.labels_valid.dtype == torch.int64
    assert splits.labels_valid.tolist() == [i % 10 for i in range(n, n + data.GREY_VALID_SIZE)]


def test_load_with_download_replaces_corrupt_file(server, tmp_path, monkeypatch):
    _, files = tiny_grey(tmp_path, n_test=3)
    publish(monkeypatch, server, "fashion-mnist", files)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    (folder / GREY_FILES[2]).write_bytes(files[GREY_FILES[2]][:-10])  # partial
    with pytest.raises(ValueError, match=r"does not match its published sha256.*download=True"):
        data.load_dataset("fashion-mnist", data_dir=tmp_path)
    splits = data.load_dataset("fashion-mnist", data_dir=tmp_path, download=True)
    assert splits.test.shape == (3, 784)
    assert server.hits == [f"/m1/{GREY_FILES[2]}"]  # only the bad file was fetched
    assert (folder / GREY_FILES[2]).read_bytes() == files[GREY_FILES[2]]


def test_missing_files_say_where_and_how(tmp_path, monkeypatch):
    for name in data.DOWNLOADABLE:
        with pytest.raises(FileNotFoundError) as info:
            data.load_dataset(name, data_dir=tmp_path)
        message = str(info.value)
        for expected in (
            str(tmp_path / name),
            "--data-dir",
            "GUMBEL_SOFTMAX_DATA",
            "download=True",
            "--download",
        ):
            assert expected in message
    assert list(tmp_path.iterdir()) == []  # loading never writes
    monkeypatch.setenv("GUMBEL_SOFTMAX_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "env" / "mnist")):
        data.load_dataset("mnist")


def test_binarized_download_converts_to_npz(server, tmp_path, monkeypatch):
    images, texts = tiny_amat()
    publish(monkeypatch, server, "binarized-mnist", texts)
    splits = data.load_dataset("binarized-mnist", data_dir=tmp_path, download=True)
    folder = tmp_path / "binarized-mnist"
    assert sorted(p.name for p in folder.iterdir()) == ["binarized_mnist.npz"]
    for split, x in images.items():
        np.testing.assert_array_equal(getattr(splits, split).numpy(), x.reshape(-1, 784))
        assert getattr(splits, f"labels_{split}") is None  # the .amat release has no labels
    assert splits.binarized and splits.name == "binarized-mnist"
    again = data.load_dataset("binarized-mnist", data_dir=tmp_path)  # from the npz, offline
    assert torch.equal(again.test, splits.test)
    assert len(server.hits) == 3


def test_binarized_from_amat_files_and_corrupt_npz(server, tmp_path, monkeypatch):
    images, texts = tiny_amat()
    publish(monkeypatch, server, "binarized-mnist", texts)
    folder = tmp_path / "binarized-mnist"
    folder.mkdir()
    for name, raw in texts.items():
        (folder / name).write_bytes(raw)
    splits = data.load_dataset("binarized-mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(splits.valid.numpy(), images["valid"].reshape(-1, 784))
    assert not (folder / "binarized_mnist.npz").exists()  # loading does not write
    data.download("binarized-mnist", tmp_path)  # converts the local .amat files, keeps them
    assert server.hits == []
    assert len(list(folder.glob("*.amat"))) == 3
    npz = folder / "binarized_mnist.npz"
    npz.write_bytes(npz.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"corrupt or unreadable npz.*download=True"):
        data.load_dataset("binarized-mnist", data_dir=tmp_path)
    # An npz of other bits is rejected by the .amat checksums even though it reads fine.
    other = {f"x_{s}": 1 - x for s, x in images.items()}
    _formats.write_npz_deterministic(npz, other)
    with pytest.raises(ValueError, match="not the published binarized MNIST train split"):
        data.load_dataset("binarized-mnist", data_dir=tmp_path)
    repaired = data.load_dataset("binarized-mnist", data_dir=tmp_path, download=True)
    np.testing.assert_array_equal(repaired.train.numpy(), images["train"].reshape(-1, 784))


def test_corrupt_amat_is_never_used(tmp_path, monkeypatch):
    _, texts = tiny_amat()
    monkeypatch.setitem(
        data.CHECKSUMS, "binarized-mnist", {n: (sha256(r),) for n, r in texts.items()}
    )
    folder = tmp_path / "binarized-mnist"
    folder.mkdir()
    for name, raw in texts.items():
        (folder / name).write_bytes(raw.replace(b"0", b"1", 1))
    with pytest.raises(ValueError, match="does not match its published sha256"):
        data.load_dataset("binarized-mnist", data_dir=tmp_path)


def test_names_and_data_dir(monkeypatch, tmp_path):
    assert data.DATASETS == ("binarized-mnist-subset", "binarized-mnist", "mnist", "fashion-mnist")
    with pytest.raises(
        ValueError, match="unknown dataset 'cifar'; expected one of: binarized-mnist-subset"
    ):
        data.load_dataset("cifar")
    with pytest.raises(TypeError, match="dataset name must be a str"):
        data.load_dataset(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data_dir must be a str"):
        data.load_dataset("mnist", data_dir=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown dataset 'binarized-mnist-subset'"):
        data.download("binarized-mnist-subset", tmp_path)
    monkeypatch.setenv("GUMBEL_SOFTMAX_DATA", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    monkeypatch.delenv("GUMBEL_SOFTMAX_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_data_dir() == tmp_path / "home" / ".cache" / "gumbel-softmax"


def test_download_cli(server, tmp_path, monkeypatch, capsys):
    _, files = tiny_grey(tmp_path, n_train=data.GREY_VALID_SIZE + 1, n_test=1)
    publish(monkeypatch, server, "mnist", files)
    assert data.download_main(["--dataset", "mnist", "--data-dir", str(tmp_path / "d")]) == 0
    assert f"mnist: ready in {tmp_path / 'd' / 'mnist'}" in capsys.readouterr().out
    assert data.load_dataset("mnist", data_dir=tmp_path / "d").valid.shape == (10_000, 784)
    monkeypatch.setitem(data.MIRRORS, "fashion-mnist", (server.url("none"),))
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "d"), "--retries", "1"]
    assert data.download_main(argv) == 1
    assert "every mirror failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        data.download_main(["--dataset", "binarized-mnist-subset"])
    assert info.value.code == 2


# ---------------------------------------------------------------------------------------------
# The shipped subset, Splits, dynamic binarization.


def test_shipped_subset():
    splits = data.load_dataset("binarized-mnist-subset")
    assert data.load_dataset().name == "binarized-mnist-subset"  # the default
    sizes = {"train": 10_000, "valid": 1_000, "test": 2_000}
    for split, n in sizes.items():
        x, y = getattr(splits, split), getattr(splits, f"labels_{split}")
        assert x.shape == (n, 784) and x.dtype == torch.float32
        assert bool(((x == 0) | (x == 1)).all()) and 0 < x.mean() < 1
        assert y.dtype == torch.int64 and set(y.unique().tolist()) == set(range(10))
    # The source's test split is sorted by class; a random subset is not.
    assert len(set(splits.labels_test[:50].tolist())) >= 8
    assert splits.binarized
    assert 0.12 < splits.train.mean().item() < 0.14  # the full set's pixel mean is 0.1306


def test_shipped_subset_checksum_is_enforced(monkeypatch):
    monkeypatch.setattr(_datasets, "SUBSET_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="installation is damaged"):
        data.load_dataset("binarized-mnist-subset")


def test_splits_validates_its_fields():
    x = torch.zeros(2, 784)
    good = {
        "train": x,
        "valid": x,
        "test": x,
        "labels_train": None,
        "labels_valid": None,
        "labels_test": None,
        "name": "toy",
        "binarized": True,
    }
    assert "train=2" in repr(data.Splits(**good))
    bad = [
        ({"train": x.double()}, ValueError, "Splits.train must be a 2-d float32 tensor"),
        ({"valid": torch.zeros(2, 28, 28)}, ValueError, "Splits.valid must be a 2-d"),
        ({"test": torch.zeros(2, 783)}, ValueError, "784 columns"),
        ({"labels_test": torch.zeros(3, dtype=torch.int64)}, ValueError, r"shape \(2,\)"),
        ({"labels_train": torch.zeros(2)}, ValueError, "int64"),
        ({"binarized": 1}, TypeError, "binarized must be a bool"),
        ({"name": None}, TypeError, "name must be a str"),
    ]
    for change, error, message in bad:
        with pytest.raises(error, match=message):
            data.Splits(**{**good, **change})


def test_dynamic_binarize_is_bernoulli():
    n = 20_000
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    x = p.expand(n, 5)
    draws = data.dynamic_binarize(x, generator=torch.Generator().manual_seed(0))
    assert draws.dtype == torch.float32 and draws.shape == (n, 5)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert draws[:, 0].sum() == 0 and draws[:, 4].sum() == n
    # Two-sided z-test per column; z = 4.42 gives a false-alarm rate of 1e-5 per column
    # (3e-5 for the three columns), with the seed fixed.
    mean = draws.double().mean(0)
    bound = 4.42 * torch.sqrt(p * (1 - p) / n)
    assert torch.all((mean - p).abs()[1:4] <= bound[1:4]), (mean, bound)
    again = data.dynamic_binarize(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_dynamic_binarize_rejects_bad_input():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        data.dynamic_binarize(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        data.dynamic_binarize(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match=r"floating-point tensor, got Tensor of dtype torch\.uint8"):
        data.dynamic_binarize(torch.tensor([0, 1], dtype=torch.uint8))
    with pytest.raises(TypeError, match="got list"):
        data.dynamic_binarize([0.5])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The full data sets, where this machine has them (CI has ../shared/data beside the clone).

FULL = {  # pixel means of train and test from each PROVENANCE.md (rounded as published there)
    "binarized-mnist": (0.13056, 0.13251, 5e-6),
    "mnist": (None, 0.1325, 5e-5),
    "fashion-mnist": (None, 0.2868, 5e-5),
}


@pytest.mark.skipif(
    SHARED is None, reason="the full data sets (shared/data) are not on this machine"
)
@pytest.mark.parametrize("name", list(FULL))
def test_full_data_sets(name):
    splits = data.load_dataset(name, data_dir=SHARED)
    assert [len(getattr(splits, s)) for s in ("train", "valid", "test")] == [50_000, 10_000, 10_000]
    train_mean, test_mean, tol = FULL[name]
    assert abs(splits.test.mean().item() - test_mean) <= tol
    if train_mean is not None:
        assert abs(splits.train.mean().item() - train_mean) <= tol
    assert splits.labels_test is not None and splits.labels_test.bincount().tolist()[0] in (
        980,
        1000,
    )
