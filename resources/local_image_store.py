"""The image store in a local folder (the embedded default: `$ZIMAGE_HOME/images`)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from pydantic import Field

from resources.image_store import ImageStore, StoreError
from zimage_assets.domain.storage_keys import validate_key


class LocalImageStore(ImageStore):
    """A folder on local disk. Writes are atomic (temp file + rename in the same folder); files get
    the modes the umask allows (0644 under the usual 022); disk errors raise StoreError."""

    root: str = Field(description="Folder that holds every key")

    def _path(self, key: str) -> Path:
        root = Path(self.root).expanduser().resolve()
        path = (root / validate_key(key)).resolve()
        if root not in path.parents:
            raise StoreError(f"key {key!r} escapes the store root {root}")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            # mkstemp makes the file 0600; give it the mode any other program would (0666 less
            # the umask), so a web server or CDN origin running as another user can read it.
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # read-only or full disk, permissions: the store's own error
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{self.location()}: no object {key!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        if self.public_base_url:
            return self._public_url(key)
        return str(self._path(key))

    def location(self) -> str:
        return str(Path(self.root).expanduser().resolve())


def _umask() -> int:
    """The process's umask (read by setting it, then putting it back)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()
