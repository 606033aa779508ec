"""Where a sweep lives: a local folder, or a URI (``s3://bucket/sweeps``, ``gs://...``) read through pyarrow.fs.

With a URI, Ray writes the experiment state and every trial checkpoint there (from whichever node runs the
trial), and the driver mirrors the sweep's small files (experiment.yaml, summary.json, curves.json,
trials.csv, best_config.yaml) beside them. The driver's own state -- the SQLite Optuna study and MLflow
store by default, the MLflow write queue -- stays in a local folder (``local_path``), because SQLite needs a
real file system. S3-compatible stores (MinIO, Ceph) work through the usual AWS variables, e.g.
``AWS_ENDPOINT_URL``, or pyarrow's URI options (``s3://bucket/path?endpoint_override=host:9000&scheme=http``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.fs as pafs

MIRRORED = ("experiment.yaml", "summary.json", "curves.json", "trials.csv", "best_config.yaml", "rerank.json")


def is_uri(path: str) -> bool:
    return "://" in str(path)


def join(uri: str, *parts: str) -> str:
    """``join("s3://b/sweeps?scheme=http", "q")`` -> ``s3://b/sweeps/q?scheme=http`` (options stay last)."""
    base, sep, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)]) + sep + query


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def uri_of(storage_uri: str, fs_path: str) -> str:
    """The URI of ``fs_path`` (a path inside the file system ``storage_uri`` opens, as Ray reports checkpoint
    paths) under ``storage_uri``, its options kept; ``fs_path`` unchanged if it lies elsewhere."""
    root = _fs(storage_uri)[1].rstrip("/")
    return join(storage_uri, fs_path[len(root):]) if fs_path.startswith(root) else fs_path


def exists(uri: str) -> bool:
    fs, path = _fs(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def check_writable(uri: str, storage_path: str | None = None) -> None:
    """Write and delete a probe object under ``uri``; an error naming ``storage_path`` says what failed."""
    probe = join(uri, ".slr-write-check")
    try:
        fs, path = _fs(probe)
        with fs.open_output_stream(path) as f:
            f.write(b"ok")
        fs.delete_file(path)
    except Exception as err:  # noqa: BLE001 -- any pyarrow / credentials / network error
        raise OSError(f"storage_path {storage_path or uri} is not writable (writing {probe} failed: "
                      f"{type(err).__name__}: {err})") from None


def upload(local_dir: Path, uri: str, names: tuple[str, ...] = MIRRORED) -> list[str]:
    """Copy the named files of ``local_dir`` that exist to ``uri``; returns the names copied."""
    fs, path = _fs(uri)
    fs.create_dir(path, recursive=True)
    done = []
    for name in names:
        src = local_dir / name
        if src.exists():
            with fs.open_output_stream(f"{path}/{name}") as f:
                f.write(src.read_bytes())
            done.append(name)
    return done


def download(uri: str, local_dir: Path | None = None, names: tuple[str, ...] = MIRRORED) -> Path:
    """The sweep's small files from ``uri`` into ``local_dir`` (default: a cache folder named after it)."""
    try:
        fs, path = _fs(uri)
        found = fs.get_file_info(f"{path}/experiment.yaml").type != pafs.FileType.NotFound
    except OSError as err:  # unknown bucket, no network, no credentials: say which sweep
        raise OSError(f"cannot read the sweep at {uri}: {err}") from None
    if not found:
        raise FileNotFoundError(f"no sweep at {uri} (no experiment.yaml there)")
    parent, _, name = path.strip("/").rpartition("/")
    local_dir = local_dir or Path(tempfile.gettempdir()) / "slr-sweeps" / parent.replace("/", "_") / name
    local_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if fs.get_file_info(f"{path}/{name}").type == pafs.FileType.File:
            with fs.open_input_stream(f"{path}/{name}") as f:
                (local_dir / name).write_bytes(f.read())
    return local_dir


def fetch_dir(uri: str, local_dir: Path) -> Path:
    """A whole remote folder (e.g. a checkpoint) into ``local_dir``."""
    fs, path = _fs(uri)
    local_dir.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(local_dir), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return local_dir
