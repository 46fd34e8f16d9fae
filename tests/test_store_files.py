"""Files the local store writes: readable by a web server running as another user (the umask
decides, as for any other program), and disk errors reported as the store's errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, metadata_of


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_are_written_with_the_modes_the_umask_allows(tmp_path, umask, mask, expected):
    from resources.local_image_store import LocalImageStore

    umask(mask)
    store = LocalImageStore(root=str(tmp_path / "store"))
    store.put("public/a/b.png", b"png bytes", "image/png")
    store.copy("public/a/b.png", "public/c.png")
    assert _mode(tmp_path / "store" / "public" / "a" / "b.png") == expected
    assert _mode(tmp_path / "store" / "public" / "c.png") == expected


def test_images_public_copies_and_manifests_of_a_batch_are_world_readable_under_umask_022(project, umask):
    project.ingest()
    (batch_id,) = project.mint(skus=["MH01-XS-Black"])
    published = metadata_of(project.generate(batch_id), "published_images")
    assert published["published"] >= 1
    root = Path(project.store.location())
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    kinds = {p.relative_to(root).parts[0] for p in files}
    assert {"images", "public", "manifests"} <= kinds, kinds
    assert {oct(_mode(p)) for p in files} == {oct(0o644)}


def test_the_write_probe_reports_a_read_only_location_as_not_writable():
    from resources.image_store import StoreError
    from resources.local_image_store import LocalImageStore

    store = LocalImageStore(root="/sys/zimage-store")  # sysfs: nobody may create files there
    with pytest.raises(StoreError, match=r"cannot write .*/sys/zimage-store.*(not permitted|Permission denied|Read-only)"):
        store.check_writable()


def test_a_full_disk_is_a_store_error_naming_the_file(tmp_path):
    """A write that the operating system refuses (here: over the file size limit, EFBIG; on a
    full disk ENOSPC) raises the store's own error, which the images asset reports."""
    script = (
        "import resource, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from resources.image_store import StoreError\n"
        "from resources.local_image_store import LocalImageStore\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        f"store = LocalImageStore(root={str(tmp_path / 'store')!r})\n"
        "try:\n"
        "    store.put('images/big.png', b'x' * 100_000)\n"
        "except StoreError as exc:\n"
        "    print('StoreError:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StoreError: cannot write ") and "big.png" in done.stdout and "File too large" in done.stdout
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]  # no half-written file left
