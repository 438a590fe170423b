"""``crossnas data fetch`` against a loopback HTTP server serving tiny archives.

The published checksums cannot match tiny fake files, so each test swaps the dataset's
entry of ``crossnas.data.fetch.SOURCES`` for one listing the fakes' own MD5s.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from crossnas.cli.main import main
from crossnas.config.data import DataConfig
from crossnas.data import fetch as fetch_mod
from crossnas.data import load_data
from crossnas.data.fetch import SOURCES, RemoteFile, fetch_dataset

# ---- a loopback server -------------------------------------------------------------------


@dataclass
class Served:
    """What the server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate_at: dict[str, int] = field(default_factory=dict)
    """Send only this many bytes of the body (Content-Length still promises all)."""
    honour_range: bool = True
    log: list[tuple[str, str | None, int]] = field(default_factory=list)
    """(file name, Range header, body bytes sent) per request."""


def _handler(state: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class name
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.rsplit("/", 1)[-1]
            rng = self.headers.get("Range")
            if name not in state.files:
                state.log.append((name, rng, 0))
                self.send_error(404, "Not Found")
                return
            data = state.files[name]
            start = 0
            if rng and state.honour_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    state.log.append((name, rng, 0))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.truncate_at.get(name)
            sent = body if cut is None else body[: max(0, cut - start)]
            self.wfile.write(sent)
            self.wfile.flush()
            state.log.append((name, rng, len(sent)))
            if cut is not None:
                self.close_connection = True

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    state = Served()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/files/", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# ---- tiny datasets -----------------------------------------------------------------------


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _pickle_batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, n).tolist()}, protocol=2)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tiny_cifar10() -> bytes:
    """A cifar-10-python.tar.gz in the official layout, 4 images per batch."""
    base = "cifar-10-batches-py/"
    members = {f"{base}data_batch_{i}": _pickle_batch(4, i) for i in range(1, 6)}
    members[f"{base}test_batch"] = _pickle_batch(3, 9)
    members[f"{base}batches.meta"] = pickle.dumps({b"label_names": [b"a"] * 10})
    members[f"{base}readme.html"] = b"<html></html>"
    return _tar_gz(members)


def idx_bytes(arr: np.ndarray) -> bytes:
    """``arr`` (uint8) as an IDX file: magic 0x0800 + ndim, big-endian sizes, the bytes."""
    return struct.pack(f">I{arr.ndim}I", 0x0800 | arr.ndim, *arr.shape) + arr.tobytes()


def tiny_idx_files(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    return {name: gzip.compress(idx_bytes(a)) for name, a in arrays.items()}


def use_fakes(monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes], urls: tuple[str, ...]) -> None:
    """Points SOURCES[name] at ``urls`` with the checksums of ``files``."""
    monkeypatch.setitem(SOURCES, name, replace(
        SOURCES[name], urls=urls, files=tuple(RemoteFile(n, _md5(d)) for n, d in files.items())))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["data", "fetch", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# ---- tests --------------------------------------------------------------------------------


def test_cifar10_from_a_base_url_unpacks_what_the_loader_reads(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, state = server
    archive = tiny_cifar10()
    state.files["cifar-10-python.tar.gz"] = archive
    use_fakes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, ("http://127.0.0.1:9/never/",))
    root, part = tmp_path / "root", tmp_path / "partial"
    rc, out, err = cli(capsys, "cifar10", "--root", str(root), "--mirror", url, "--partial-dir", str(part))
    assert (rc, err) == (0, "")
    assert f"unpacked into {root}" in out
    assert state.log == [("cifar-10-python.tar.gz", None, len(archive))]  # the mirror, not the official URL
    assert tree(root)[0] == "cifar-10-batches-py" and all(p.startswith("cifar-10-batches-py") for p in tree(root))
    assert tree(part) == []  # the verified download was moved out of the partial folder
    b = load_data(DataConfig(dataset="cifar10", root=str(root), cifar_val=5))
    assert b.sizes() == {"train": 15, "val": 5, "test": 3}
    # a second call finds everything and fetches nothing
    rc, out, _ = cli(capsys, "cifar10", "--root", str(root), "--mirror", url, "--partial-dir", str(part))
    assert rc == 0 and "already in" in out and len(state.log) == 1


def test_corrupt_archive_exits_2_with_one_line_and_leaves_nothing(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, state = server
    archive = tiny_cifar10()
    use_fakes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, (url,))
    bad = bytearray(archive)
    bad[len(bad) // 2] ^= 0xFF
    state.files["cifar-10-python.tar.gz"] = bytes(bad)
    root, part = tmp_path / "D", tmp_path / "partial"
    root.mkdir()
    rc, out, err = cli(capsys, "cifar10", "--root", str(root), "--mirror", url, "--partial-dir", str(part))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cifar-10-python.tar.gz from ")
    assert f"MD5 checksum {_md5(bytes(bad))} does not match the published {_md5(archive)}" in err
    assert tree(root) == [] and tree(part) == []  # the bad download was deleted


def test_truncated_transfer_keeps_the_partial_outside_root_and_resumes(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, state = server
    files = tiny_idx_files()
    state.files.update(files)
    use_fakes(monkeypatch, "mnist", files, (url,))
    name = "train-images-idx3-ubyte.gz"
    n = len(files[name])
    state.truncate_at[name] = 1000
    root, part = tmp_path / "mnist", tmp_path / "partial"
    rc, _, err = cli(capsys, "mnist", "--root", str(root), "--partial-dir", str(part))
    assert rc == 2 and err.count("\n") == 1
    assert f"the transfer stopped after 1000 of {n} bytes" in err and "the next fetch resumes there" in err
    assert not root.exists()
    assert (part / "mnist" / f"{name}.part").read_bytes() == files[name][:1000]
    # the server recovers: only the missing bytes are asked for and sent
    del state.truncate_at[name]
    state.log.clear()
    rc, _, err = cli(capsys, "mnist", "--root", str(root), "--partial-dir", str(part))
    assert (rc, err) == (0, "")
    assert state.log[0] == (name, "bytes=1000-", n - 1000)
    assert sorted(p.name for p in root.iterdir()) == sorted(files)
    assert (root / name).read_bytes() == files[name]
    assert load_data(DataConfig(dataset="mnist", root=str(root), mnist_val=2)).sizes() == {
        "train": 10, "val": 2, "test": 5}


def test_existing_partial_is_resumed_with_a_range_request(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = server
    archive = tiny_cifar10()
    state.files["cifar-10-python.tar.gz"] = archive
    use_fakes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, (url,))
    part = tmp_path / "partial"
    (part / "cifar10").mkdir(parents=True)
    (part / "cifar10" / "cifar-10-python.tar.gz.part").write_bytes(archive[:777])
    seen: list[tuple[int, int | None]] = []
    res = fetch_dataset("cifar10", tmp_path / "root", partial_dir=part,
                        progress=lambda _n, done, total: seen.append((done, total)))
    assert not res.already_there
    assert state.log == [("cifar-10-python.tar.gz", "bytes=777-", len(archive) - 777)]
    assert seen[-1] == (len(archive), len(archive)) and seen[0][0] > 777


def test_corrupt_partial_is_downloaded_again_and_range_ignoring_server_restarts(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = server
    archive = tiny_cifar10()
    state.files["cifar-10-python.tar.gz"] = archive
    use_fakes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, (url,))
    part = tmp_path / "partial" / "cifar10" / "cifar-10-python.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 500)  # not the archive's first bytes
    fetch_dataset("cifar10", tmp_path / "a", partial_dir=tmp_path / "partial")
    assert state.log == [("cifar-10-python.tar.gz", "bytes=500-", len(archive) - 500),
                         ("cifar-10-python.tar.gz", None, len(archive))]
    # a server that ignores Range sends the whole file, which replaces the partial one
    state.log.clear()
    state.honour_range = False
    assert not part.parent.exists()  # emptied and removed after the success
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 500)
    fetch_dataset("cifar10", tmp_path / "b", partial_dir=tmp_path / "partial")
    assert state.log == [("cifar-10-python.tar.gz", "bytes=500-", len(archive))]
    assert (tmp_path / "b" / "cifar-10-batches-py" / "test_batch").is_file()


def test_local_folder_and_file_url_mirrors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = tiny_idx_files(seed=3)
    use_fakes(monkeypatch, "fashion-mnist", files, ("http://127.0.0.1:9/never/",))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in files.items():
        (mirror / name).write_bytes(data)
    root = tmp_path / "fm"
    rc, out, err = cli(capsys, "fashion-mnist", "--root", str(root), "--mirror", str(mirror),
                       "--partial-dir", str(tmp_path / "p"))
    assert (rc, err) == (0, "") and "official 60,000 / 10,000 split" in out
    assert sorted(p.name for p in root.iterdir()) == sorted(files)
    assert sorted(p.name for p in mirror.iterdir()) == sorted(files)  # the mirror is left as it was
    assert load_data(DataConfig(dataset="fashion_mnist", root=str(root), mnist_val=2)).sizes()["test"] == 5
    rc, _, err = cli(capsys, "fashion_mnist", "--root", str(tmp_path / "fm2"), "--mirror", mirror.as_uri())
    assert (rc, err) == (0, "")
    (mirror / "t10k-labels-idx1-ubyte.gz").unlink()
    rc, _, err = cli(capsys, "fashion-mnist", "--root", str(tmp_path / "fm3"), "--mirror", str(mirror))
    assert rc == 2 and err == (f"error: --mirror {mirror}: has no t10k-labels-idx1-ubyte.gz "
                               "(the file must have its official name)\n")
    assert not (tmp_path / "fm3").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_url_404_and_bad_arguments_are_one_line_errors(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, state = server
    root, part = tmp_path / "r", str(tmp_path / "p")
    dead = f"http://127.0.0.1:{_closed_port()}/"
    rc, _, err = cli(capsys, "cifar100", "--root", str(root), "--mirror", dead, "--partial-dir", part)
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot download cifar-100-python.tar.gz from {dead}cifar-100-python.tar.gz: ")
    assert "--mirror URL|DIR" in err and not root.exists()
    rc, _, err = cli(capsys, "cifar100", "--root", str(root), "--mirror", url, "--partial-dir", part)
    assert rc == 2 and "HTTP 404" in err and err.count("\n") == 1 and not root.exists()
    # the official URLs are tried in order: a dead one, then one that answers
    files = tiny_idx_files()
    state.files.update(files)
    use_fakes(monkeypatch, "mnist", files, (dead, url))
    rc, _, err = cli(capsys, "mnist", "--root", str(root), "--partial-dir", part)
    assert (rc, err) == (0, "")
    for args, msg in [
        (["svhn"], "error: unknown dataset 'svhn'; allowed: cifar10, cifar100, mnist, fashion-mnist\n"),
        (["mnist", "--root", str(tmp_path / "x"), "--mirror", "ftp://h/"], "unsupported URL"),
        (["mnist", "--root", str(tmp_path / "x"), "--mirror", str(tmp_path / "nope")], "no such folder"),
    ]:
        rc, _, err = cli(capsys, *args)
        assert rc == 2 and msg in err and err.count("\n") == 1


def test_root_holding_part_of_the_dataset_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = tiny_idx_files()
    use_fakes(monkeypatch, "mnist", files, ("http://127.0.0.1:9/",))
    root = tmp_path / "m"
    root.mkdir()
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"mine")
    rc, _, err = cli(capsys, "mnist", "--root", str(root), "--partial-dir", str(tmp_path / "p"))
    assert rc == 2 and "holds part of mnist (train-images-idx3-ubyte.gz)" in err
    assert (root / "train-images-idx3-ubyte.gz").read_bytes() == b"mine"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_disk_full_is_a_one_line_error(
        tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, state = server
    archive = tiny_cifar10()
    state.files["cifar-10-python.tar.gz"] = archive
    use_fakes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, (url,))
    part = tmp_path / "p" / "cifar10" / "cifar-10-python.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.symlink_to("/dev/full")  # every write there fails with ENOSPC
    rc, _, err = cli(capsys, "cifar10", "--root", str(tmp_path / "r"), "--partial-dir", str(tmp_path / "p"))
    assert rc == 2 and err.count("\n") == 1
    assert err == f"error: cannot write {part}: No space left on device\n"
    assert not (tmp_path / "r").exists()


def test_archive_with_unsafe_or_missing_members_unpacks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    root = tmp_path / "root"
    for members, msg in [
        ({"cifar-10-batches-py/data_batch_1": b"x", "../evil": b"x"}, "unexpected archive member '../evil'"),
        ({"cifar-10-batches-py/data_batch_1": b"x"}, "the archive lacks cifar-10-batches-py/data_batch_2"),
    ]:
        archive = _tar_gz(members)
        (mirror / "cifar-10-python.tar.gz").write_bytes(archive)
        use_fakes(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, ("http://127.0.0.1:9/",))
        rc, _, err = cli(capsys, "cifar10", "--root", str(root), "--mirror", str(mirror))
        assert rc == 2 and msg in err and err.count("\n") == 1
        assert not root.exists() and not (tmp_path / "evil").exists()


def test_published_checksums_are_well_formed() -> None:
    assert set(SOURCES) == {"cifar10", "cifar100", "mnist", "fashion-mnist"}
    for src in SOURCES.values():
        assert src.files and all(len(f.md5) == 32 and int(f.md5, 16) >= 0 for f in src.files)
        assert all(u.startswith(("http://", "https://")) and u.endswith("/") for u in src.urls)
    assert fetch_mod.source_for("fashion_mnist").dataset == "fashion_mnist"
    assert [f.name for f in SOURCES["mnist"].files] == list(SOURCES["mnist"].layout)
