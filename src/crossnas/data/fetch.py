"""Downloads the official dataset files, checks their published MD5 and unpacks them.

``crossnas data fetch NAME --root DIR`` (``crossnas.cli.data_cmd``) calls
:func:`fetch_dataset`. What it guarantees:

* **Nothing unverified reaches the root.** Downloads go to a partial folder outside the
  root (``partial_dir/NAME/FILE.part``; the CLI's default is ``~/.cache/crossnas/partial``).
  Only after every file of the dataset has its published MD5 is anything written to the
  root: each file through a temporary file that is renamed into place, an archive unpacked
  into a temporary folder in the root whose data folder is then renamed into place. A
  failure of any step removes what that step wrote; a file whose checksum does not match
  is deleted.
* **Interrupted downloads resume.** A transfer that stops (network error, truncated
  response, ``Ctrl-C``) keeps its ``.part`` file; the next call asks the server for the
  missing bytes only (HTTP ``Range``) and appends them. A resumed file that then fails its
  checksum is downloaded once more from the start.
* **One-line errors** (:class:`CrossnasError`): unknown dataset, unreachable URL, HTTP
  error, truncated transfer, checksum mismatch, disk full, a mirror folder without the
  file, a root that already holds part of the dataset.

``--mirror`` replaces the official URLs: a base URL (``http(s)://HOST/PATH/`` + official
file name) or a local folder (or ``file://`` URL) holding the files under their official
names. The published checksums apply to mirrors too.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from crossnas.errors import CrossnasError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    Attributes:
        name: its official file name (also the name looked up in a mirror).
        md5: the published MD5 checksum, 32 lower-case hex digits.
    """

    name: str
    md5: str


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and what the loaders need of it.

    Attributes:
        name: the name ``crossnas data fetch`` takes (``fashion-mnist``).
        dataset: the ``data.dataset`` config value it serves (``fashion_mnist``).
        urls: official base URLs, tried in order (a file's URL is base + its name).
        files: the published files with their checksums.
        unpack: ``"tar"``: each file is a tar.gz archive holding the folder ``folder``,
            which is moved into the root; ``"copy"``: the files are placed in the root as
            they are (the loaders read them compressed).
        layout: the paths (relative to the root) the loader reads; all present = fetched.
        default_root: the CLI's ``--root`` default.
        folder: the archive's data folder (``unpack="tar"`` only).
        note: said after a successful fetch.
    """

    name: str
    dataset: str
    urls: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    unpack: str
    layout: tuple[str, ...]
    default_root: str
    folder: str = ""
    note: str = ""


def _idx_files(md5s: tuple[str, str, str, str]) -> tuple[RemoteFile, ...]:
    from crossnas.data.mnist import expected_files

    return tuple(RemoteFile(n, h) for n, h in zip(expected_files(), md5s, strict=True))


def _cifar_layout(dataset: str) -> tuple[str, ...]:
    from crossnas.data.cifar import expected_files

    return tuple(expected_files(dataset))


def _idx_layout() -> tuple[str, ...]:
    from crossnas.data.mnist import expected_files

    return tuple(expected_files())


SOURCES: dict[str, DatasetSource] = {
    "cifar10": DatasetSource(
        "cifar10", "cifar10", ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        "tar", _cifar_layout("cifar10"), "data", folder="cifar-10-batches-py",
    ),
    "cifar100": DatasetSource(
        "cifar100", "cifar100", ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        "tar", _cifar_layout("cifar100"), "data", folder="cifar-100-python",
    ),
    "mnist": DatasetSource(
        "mnist", "mnist",
        # the dataset's own page first; it often refuses scripted downloads, so then the
        # copy PyTorch's dataset code uses (same files, same checksums)
        ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        _idx_files(("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
        "copy", _idx_layout(), "data/mnist",
    ),
    "fashion-mnist": DatasetSource(
        "fashion-mnist", "fashion_mnist", ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        _idx_files(("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
        "copy", _idx_layout(), "data/fashion-mnist",
        note="the official 60,000 / 10,000 split (../shared/data/fetch.sh makes a stratified one instead)",
    ),
}
"""The datasets ``crossnas data fetch`` knows, with their published MD5 checksums (the
values torchvision's and TensorFlow's dataset code check). Tests swap entries for tiny
archives with their own checksums."""

ProgressFn = Callable[[str, int, int | None], None]
"""``(file name, bytes so far, total bytes or None)``, called as a download proceeds."""


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_dataset` did.

    Attributes:
        source: the dataset fetched.
        root: the folder the loaders read (``data.root``).
        already_there: every file the loader needs was present; nothing was fetched.
        files: the published files verified (names).
    """

    source: DatasetSource
    root: Path
    already_there: bool
    files: tuple[str, ...]


def source_for(name: str, sources: Mapping[str, DatasetSource] | None = None) -> DatasetSource:
    """The source called ``name`` (``fashion_mnist`` is accepted for ``fashion-mnist``).

    Raises:
        CrossnasError: unknown name (the message lists the known ones).
    """
    table = SOURCES if sources is None else sources
    key = name.strip().lower().replace("_", "-")
    if key in table:
        return table[key]
    extra = "; digits ships with scikit-learn and needs no fetch" if key == "digits" else ""
    raise CrossnasError(f"unknown dataset {name!r}; allowed: {', '.join(table)}{extra}")


def md5_of(path: Path) -> str:
    """MD5 of a file, hex (an integrity check against the published values)."""
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_dataset(
    name: str,
    root: str | Path,
    *,
    partial_dir: str | Path,
    mirror: str | None = None,
    sources: Mapping[str, DatasetSource] | None = None,
    progress: ProgressFn | None = None,
    timeout_s: float = 60.0,
) -> FetchResult:
    """Fetches dataset ``name`` into ``root`` in the layout its loader reads.

    Args:
        name: ``cifar10``, ``cifar100``, ``mnist`` or ``fashion-mnist`` (a key of ``sources``).
        root: destination folder (created when needed; ``data.root`` of the config).
        partial_dir: folder for downloads in progress (``NAME/FILE.part``), outside ``root``.
        mirror: base URL or local folder replacing the official URLs (``None``: official).
        sources: the dataset table (``None``: :data:`SOURCES`).
        progress: called with download progress (``None``: silent).
        timeout_s: network timeout of one connect or read, seconds.

    Returns:
        What was done.

    Raises:
        CrossnasError: any failure, one line; ``root`` then holds nothing new.
    """
    src = source_for(name, sources)
    dest = Path(root).expanduser()
    present = [p for p in src.layout if (dest / p).exists()]
    if len(present) == len(src.layout):
        return FetchResult(src, dest, True, tuple(f.name for f in src.files))
    if present:
        missing = [p for p in src.layout if p not in present]
        raise CrossnasError(
            f"--root {dest}: holds part of {src.name} ({', '.join(present)}) but not {', '.join(missing)}; "
            "move those files away (or pass another --root) and fetch again"
        )
    if src.unpack == "tar" and (dest / src.folder).exists():
        raise CrossnasError(f"--root {dest}: {src.folder} exists but is incomplete; move it away and fetch again")

    local, base_urls = _parse_mirror(mirror, src)
    part_dir = Path(partial_dir).expanduser() / src.name
    verified: list[Path] = []
    try:
        for f in src.files:
            if local is not None:
                verified.append(_verified_local(local, f, dest))
            else:
                verified.append(_verified_download(base_urls, f, part_dir, dest, progress, timeout_s))
    except BaseException:
        with contextlib.suppress(OSError):
            part_dir.rmdir()  # only when empty: partial downloads stay for the next call
        raise

    created_root = not dest.exists()
    try:
        if src.unpack == "tar":
            for f, path in zip(src.files, verified, strict=True):
                _unpack_tar(path, f.name, src, dest)
        else:
            _place_files(src.files, verified, dest)
    except BaseException:
        if created_root:
            with contextlib.suppress(OSError):
                dest.rmdir()  # only when empty
        raise
    if local is None:
        for path in verified:
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            part_dir.rmdir()
    return FetchResult(src, dest, False, tuple(f.name for f in src.files))


# ---- sources ---------------------------------------------------------------------------


def _parse_mirror(mirror: str | None, src: DatasetSource) -> tuple[Path | None, tuple[str, ...]]:
    """``(local folder, None)`` or ``(None, base URLs)``."""
    if mirror is None:
        return None, src.urls
    if "://" in mirror:
        parsed = urllib.parse.urlparse(mirror)
        scheme = parsed.scheme.lower()
        if scheme == "file":
            folder = Path(urllib.request.url2pathname(parsed.path))
        elif scheme in ("http", "https") and parsed.netloc:
            return None, (mirror,)
        else:
            raise CrossnasError(
                f"--mirror {mirror}: unsupported URL; give an http://, https:// or file:// URL or a local folder"
            )
    else:
        folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise CrossnasError(
            f"--mirror {mirror}: no such folder; give a folder holding {', '.join(f.name for f in src.files)} "
            "or an http(s):// base URL"
        )
    return folder, ()


def _checksum_error(name: str, where: str, got: str, want: str, dest: Path, action: str) -> CrossnasError:
    return CrossnasError(
        f"{name} from {where}: MD5 checksum {got} does not match the published {want}; {action}, "
        f"nothing was written to {dest} (fetch again, or use another --mirror)"
    )


def _verified_local(folder: Path, f: RemoteFile, dest: Path) -> Path:
    path = folder / f.name
    if not path.is_file():
        raise CrossnasError(f"--mirror {folder}: has no {f.name} (the file must have its official name)")
    try:
        got = md5_of(path)
    except OSError as exc:
        raise CrossnasError(f"--mirror {folder}: cannot read {f.name}: {exc.strerror or exc}") from None
    if got != f.md5:
        raise _checksum_error(f.name, str(folder), got, f.md5, dest, "the mirror's file was left as it is")
    return path


class _TransferError(Exception):
    """A download that failed on the network side (message: the reason, one phrase)."""


def _join_url(base: str, name: str) -> str:
    return base if base.endswith(name) else base.rstrip("/") + "/" + name


def _verified_download(base_urls: tuple[str, ...], f: RemoteFile, part_dir: Path, dest: Path,
                       progress: ProgressFn | None, timeout_s: float) -> Path:
    done = part_dir / f.name
    part = part_dir / f"{f.name}.part"
    if done.is_file():
        if md5_of(done) == f.md5:
            return done  # verified by an earlier call that then failed on another file
        _unlink(done)
    try:
        part_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrossnasError(f"cannot create the partial-download folder {part_dir}: {exc.strerror or exc}") from None
    errors: list[str] = []
    for base in base_urls:
        url = _join_url(base, f.name)
        for attempt in range(2):
            resumed = part.is_file() and part.stat().st_size > 0
            try:
                _download(url, part, f.name, progress, timeout_s)
            except _TransferError as exc:
                kept = part.stat().st_size if part.is_file() else 0
                keep = (f"; the {kept} bytes received are kept in {part} and the next fetch resumes there"
                        if kept else "")
                errors.append(f"cannot download {f.name} from {url}: {exc}{keep}")
                break
            got = md5_of(part)
            if got == f.md5:
                _rename(part, done)
                return done
            _unlink(part)
            if resumed and attempt == 0:
                logger.warning("%s: the resumed download does not match its checksum; downloading it again", f.name)
                continue
            raise _checksum_error(f.name, url, got, f.md5, dest, "the download was deleted")
    hint = "" if len(base_urls) == 1 else f" (tried {len(base_urls)} URLs)"
    raise CrossnasError(f"{errors[-1]}{hint}; check the network or pass --mirror URL|DIR")


def _download(url: str, part: Path, label: str, progress: ProgressFn | None, timeout_s: float) -> None:
    """Downloads ``url`` into ``part``, appending to what it holds when the server allows.

    Raises:
        _TransferError: network failure, HTTP error, truncated response.
        CrossnasError: writing ``part`` failed (disk full).
    """
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "crossnas-data-fetch", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # the partial file already holds every byte: the checksum decides
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _TransferError(str(getattr(exc.reason, "strerror", None) or exc.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _TransferError(str(exc) or type(exc).__name__) from None
    with resp:
        length_hdr = resp.headers.get("Content-Length")
        length = int(length_hdr) if length_hdr and length_hdr.isdigit() else None
        if offset and resp.status == 206:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (resp.headers.get("Content-Range") or "").strip())
            if m is None or int(m.group(1)) != offset:
                raise _TransferError(f"the server answered a resume from byte {offset} with Content-Range "
                                     f"{resp.headers.get('Content-Range')!r}")
            total = int(m.group(3)) if m.group(3).isdigit() else None
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # the whole file (the server ignored the range)
            total = length
        received = 0
        try:
            with part.open(mode) as fh:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _TransferError(f"the transfer broke off after {offset + received} bytes "
                                             f"({exc or type(exc).__name__})") from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(label, offset + received, total)
        except OSError as exc:
            raise CrossnasError(f"cannot write {part}: {exc.strerror or exc}") from None
    if length is not None and received < length:
        raise _TransferError(f"the transfer stopped after {offset + received} of "
                             f"{offset + length} bytes")


# ---- into the root -------------------------------------------------------------------------


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _rename(src: Path, dst: Path) -> None:
    try:
        src.replace(dst)
    except OSError as exc:
        raise CrossnasError(f"cannot rename {src} to {dst}: {exc.strerror or exc}") from None


def _place_files(files: tuple[RemoteFile, ...], paths: list[Path], dest: Path) -> None:
    """Copies each verified file into ``dest`` atomically; on failure removes those placed."""
    from crossnas.utils.io import atomic_open

    placed: list[Path] = []
    try:
        for f, path in zip(files, paths, strict=True):
            target = dest / f.name
            with path.open("rb") as src_fh, atomic_open(target, "wb") as out:
                shutil.copyfileobj(src_fh, out, 1 << 20)
            placed.append(target)
    except BaseException as exc:
        for p in placed:
            _unlink(p)
        if isinstance(exc, OSError):  # reading the verified file (atomic_open reports its own)
            raise CrossnasError(f"cannot copy into {dest}: {exc.strerror or exc}") from None
        raise


def _safe_members(tar: tarfile.TarFile, name: str) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
            raise CrossnasError(f"{name}: unexpected archive member {m.name!r} (only plain files and folders "
                                "inside the archive are unpacked); nothing was unpacked")
    return members


def _unpack_tar(archive: Path, name: str, src: DatasetSource, dest: Path) -> None:
    """Unpacks ``archive`` into a temporary folder in ``dest``, then renames its data folder in."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{src.folder}.", suffix=".unpacking", dir=dest))
    except OSError as exc:
        raise CrossnasError(f"cannot write {dest}: {exc.strerror or exc}") from None
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = _safe_members(tar, name)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters; members checked above
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError) as exc:
            raise CrossnasError(f"{name}: not a readable tar.gz archive ({exc}); nothing was unpacked") from None
        except OSError as exc:
            raise CrossnasError(f"cannot unpack {name} into {dest}: {exc.strerror or exc}") from None
        missing = [p for p in src.layout if not (tmp / p).is_file()]
        if missing:
            raise CrossnasError(f"{name}: the archive lacks {', '.join(missing)}; nothing was unpacked")
        _rename(tmp / src.folder, dest / src.folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
