"""MNIST / Fashion-MNIST loaders on tiny files written in the exact IDX format."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from crossnas.config.data import DATASET_SHAPES, DATASETS, DataConfig
from crossnas.data import RAW_INPUT, input_normalization, load_data
from crossnas.data.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxFormatError, parse_idx
from crossnas.errors import CrossnasError


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """``arr`` (uint8) as an IDX file: big-endian magic, sizes, then the bytes."""
    magic = (0x0800 | arr.ndim) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_idx_set(root: Path, n_train: int = 30, n_test: int = 7, seed: int = 0, hw: int = 28,
                  gz: bool = True) -> dict[str, np.ndarray]:
    """The four files of an MNIST-style dataset with random pixels and labels."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, hw, hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, hw, hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data = idx_bytes(arr)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


def test_mnist_split_normalisation_and_labels(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path)
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=10)
    b = load_data(cfg)
    assert b.input_shape == (1, 28, 28) == DATASET_SHAPES["mnist"][0] and b.n_classes == 10
    assert b.sizes() == {"train": 20, "val": 10, "test": 7}
    assert b.train_x.dtype == torch.float32 and b.train_y.dtype == torch.int64
    # test split = the t10k files in order, normalised with MNIST's constants
    raw = arrays["t10k-images-idx3-ubyte"]
    assert float(b.test_x[3, 0, 5, 17]) == pytest.approx((raw[3, 5, 17] / 255.0 - 0.1307) / 0.3081, abs=1e-5)
    assert b.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    # every train/val image keeps its own label, and the two parts cover the training file once
    label_of = {img.tobytes(): int(lab) for img, lab in zip(arrays["train-images-idx3-ubyte"],
                                                             arrays["train-labels-idx1-ubyte"], strict=True)}
    seen = []
    for x, y in ((b.train_x, b.train_y), (b.val_x, b.val_y)):
        pix = np.rint((x[:, 0].numpy() * 0.3081 + 0.1307) * 255).astype(np.uint8)
        for img, lab in zip(pix, y.tolist(), strict=True):
            assert label_of[img.tobytes()] == lab
            seen.append(img.tobytes())
    assert sorted(seen) == sorted(label_of)
    again = load_data(cfg)
    assert torch.equal(again.val_x, b.val_x)
    other = load_data(DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=10, split_seed=1))
    assert not torch.equal(other.val_x, b.val_x)


def test_fashion_mnist_constants_and_uncompressed_files(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, gz=False)
    b = load_data(DataConfig(dataset="fashion_mnist", root=str(tmp_path), mnist_val=5))
    raw = arrays["t10k-images-idx3-ubyte"]
    assert float(b.test_x[0, 0, 0, 0]) == pytest.approx((raw[0, 0, 0] / 255.0 - 0.2860) / 0.3530, abs=1e-5)
    assert b.name == "fashion_mnist" and b.mean == (0.2860,) and b.std == (0.3530,)
    assert input_normalization(DataConfig(dataset="fashion_mnist", root="x")) == (b.mean, b.std)


def test_dataset_defaults_and_dumps() -> None:
    m = DataConfig(dataset="mnist", root="d")
    f = DataConfig(dataset="fashion_mnist", root="d")
    c = DataConfig(dataset="cifar10", root="d")
    assert m.augment_enabled and f.augment_enabled and not DataConfig().augment_enabled
    assert (m.crop_pad, m.hflip) == (2, False)  # a mirrored digit is another glyph
    assert (f.crop_pad, f.hflip) == (2, True)
    assert (c.crop_pad, c.hflip) == (4, True)
    assert DataConfig(dataset="mnist", root="d", hflip=True, crop_pad=4).hflip is True
    # mnist_val only in the IDX datasets' dumps: older digits/CIFAR runs keep their stage hashes
    assert "mnist_val" in m.model_dump() and "mnist_val" not in c.model_dump()
    assert "mnist_val" not in DataConfig().model_dump()
    assert DataConfig.model_validate(m.model_dump()) == m
    with pytest.raises(ValueError, match="root: required for dataset 'fashion_mnist'"):
        DataConfig(dataset="fashion_mnist")
    for name in DATASETS:
        assert name in RAW_INPUT and name in DATASET_SHAPES


def _corrupt(root: Path, name: str, data: bytes, gz: bool = True) -> None:
    (root / f"{name}.gz").write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize(("breakage", "message"), [
    ("missing", "missing train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz"),
    ("magic", "train-images-idx3-ubyte.gz is not a valid IDX file: wrong magic number 2049 (expected 2051"),
    ("size", "t10k-images-idx3-ubyte.gz holds 27x28 images, 28x28 expected"),
    ("short", "train-images-idx3-ubyte.gz is not a valid IDX file: truncated: 23520 data bytes, the header's sizes 31x28x28 need 24304"),
    ("long", "t10k-labels-idx1-ubyte.gz is not a valid IDX file: 7 data bytes, more than the header's sizes 6 hold"),
    ("count", "train-labels-idx1-ubyte.gz holds 29 labels but train-images-idx3-ubyte.gz 30 images"),
    ("label", "t10k-labels-idx1-ubyte.gz has label 10, outside 0..9"),
    ("truncated_gz", "t10k-images-idx3-ubyte.gz is not a valid IDX file: truncated gzip file"),
    ("not_gz", "train-labels-idx1-ubyte.gz is not a valid IDX file: not a gzip file"),
])
def test_malformed_files_are_one_line_errors(tmp_path: Path, breakage: str, message: str) -> None:
    arrays = write_idx_set(tmp_path)
    tr_x, tr_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    te_x, te_y = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    if breakage == "missing":
        (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
        (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    elif breakage == "magic":
        _corrupt(tmp_path, "train-images-idx3-ubyte", idx_bytes(tr_x, magic=LABELS_MAGIC))
    elif breakage == "size":
        _corrupt(tmp_path, "t10k-images-idx3-ubyte", idx_bytes(te_x[:, :27, :]))
    elif breakage == "short":  # the header promises 31 images, the data holds 30
        data = idx_bytes(tr_x)
        _corrupt(tmp_path, "train-images-idx3-ubyte", struct.pack(">II", IMAGES_MAGIC, 31) + data[8:])
    elif breakage == "long":
        _corrupt(tmp_path, "t10k-labels-idx1-ubyte", struct.pack(">II", LABELS_MAGIC, 6) + te_y.tobytes())
    elif breakage == "count":
        _corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(tr_y[:-1]))
    elif breakage == "label":
        bad = te_y.copy()
        bad[2] = 10
        _corrupt(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(bad))
    elif breakage == "truncated_gz":
        full = gzip.compress(idx_bytes(te_x))
        (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(full[: len(full) // 2])
    elif breakage == "not_gz":
        _corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(tr_y), gz=False)
    with pytest.raises(CrossnasError) as e:
        load_data(DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=5))
    msg = str(e.value)
    assert message in msg, msg
    assert "\n" not in msg and msg.startswith(f"data.root {tmp_path}:")
    assert "crossnas data fetch mnist" in msg and "t10k-labels-idx1-ubyte.gz" in msg


def test_validation_size_must_leave_training_images(tmp_path: Path) -> None:
    write_idx_set(tmp_path, n_train=12)
    with pytest.raises(CrossnasError, match=r"data.mnist_val: 12 validation images requested but the training set has 12"):
        load_data(DataConfig(dataset="fashion_mnist", root=str(tmp_path), mnist_val=12))


def test_parse_idx_header_checks() -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(arr), IMAGES_MAGIC), arr)
    with pytest.raises(IdxFormatError, match="too short for an IDX header"):
        parse_idx(b"\x00\x00", IMAGES_MAGIC)
    with pytest.raises(IdxFormatError, match="truncated header"):
        parse_idx(struct.pack(">II", IMAGES_MAGIC, 2), IMAGES_MAGIC)


def test_28x28_grayscale_flows_through_supernet_and_cost_model(tmp_path: Path) -> None:
    from crossnas.config.hardware import HardwareConfig
    from crossnas.config.space import SpaceConfig
    from crossnas.hw.cost import cost_networks
    from crossnas.space.arch import ArchSpec, random_arch
    from crossnas.space.mnsim import arch_to_network_dict
    from crossnas.supernet.network import Supernet

    write_idx_set(tmp_path, n_train=12, n_test=4)
    b = load_data(DataConfig(dataset="fashion_mnist", root=str(tmp_path), mnist_val=4))
    space = SpaceConfig(n_layers=4, widths=(8, 16), w_bits=(4, 6), a_bits=(4, 6), head={"pool": 2, "fc": []})
    net = Supernet(space, b.input_shape, b.n_classes).eval()
    rng = np.random.default_rng(0)
    # the deepest pooling 28x28 allows before a 2x2 head (28 -> 14 -> 7 -> 3), and random ones
    deepest = ArchSpec.from_string("V8w4a4-V16w6a6-V8w4a6-R16w6a4")
    specs = [deepest] + [random_arch(space, rng, b.input_hw) for _ in range(3)]
    with torch.no_grad():
        for spec in specs:
            assert net(b.test_x, spec).shape == (4, 10)
    res = cost_networks([arch_to_network_dict(s, space, b.input_shape, b.n_classes) for s in specs],
                        HardwareConfig())
    assert all(res.report(i)["latency_ms"] > 0 for i in range(len(specs)))


def test_test_images_draws_a_seeded_subset_of_the_test_split(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, n_test=9)
    full = load_data(DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=5))
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=5, test_images=4)
    b = load_data(cfg)
    assert b.sizes() == {"train": 25, "val": 5, "test": 4}
    assert torch.equal(b.train_x, full.train_x) and torch.equal(b.val_y, full.val_y)
    rows = [next(i for i in range(9) if torch.equal(full.test_x[i], x)) for x in b.test_x]
    assert rows == sorted(set(rows))  # distinct images, in file order
    assert b.test_y.tolist() == [int(arrays["t10k-labels-idx1-ubyte"][i]) for i in rows]
    assert torch.equal(load_data(cfg).test_x, b.test_x)
    other = {tuple(load_data(DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=5, test_images=4,
                                        split_seed=s)).test_y.tolist()) for s in range(1, 6)}
    assert len(other | {tuple(b.test_y.tolist())}) > 1
    assert "test_images" in cfg.model_dump() and "test_images" not in DataConfig().model_dump()
    assert load_data(DataConfig(test_images=50)).sizes()["test"] == 50  # any dataset (digits here)
    with pytest.raises(CrossnasError, match="data.test_images: 10 requested but the mnist test split has 9"):
        load_data(DataConfig(dataset="mnist", root=str(tmp_path), mnist_val=5, test_images=10))


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_shipped_configs_validate_and_name_their_dataset(name: str, tmp_path: Path) -> None:
    from crossnas.config.run import builtin_config_path, load_run_config

    cfg = load_run_config(builtin_config_path(name), {"data": {"root": str(tmp_path)}})
    assert cfg.data.dataset == name and cfg.data.root == str(tmp_path)
    assert set(cfg.space.blocks) == {"vgg", "vgg_nopool", "residual", "skip"}
    assert cfg.space.w_bits == cfg.space.a_bits == (3, 4, 5, 6, 7, 8)
    assert cfg.search.accuracy.fidelity == "pim_aware"
    assert (Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml").is_file()  # the top-level link


def test_run_with_missing_idx_files_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crossnas.cli.main import main
    from crossnas.config.run import builtin_config_path

    rc = main(["run", "-c", str(builtin_config_path("fashion_mnist")), "--set", f"data.root={tmp_path}",
               "-o", str(tmp_path / "run")])
    lines = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert lines[:-1] == ["[supernet] running"]  # the stage line, then one error line
    assert lines[-1].startswith(f"error: data.root {tmp_path}: missing train-images-idx3-ubyte.gz")
    assert "crossnas data fetch fashion-mnist" in lines[-1]
