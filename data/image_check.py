"""Every image file of a folder data set decoded once before the first trial, so one bad file cannot end a sweep.

Checked in parallel and remembered by path, size and modification time in the user's cache folder, so a
second sweep over the same folder re-reads only what changed.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

log = logging.getLogger("sweep")

CACHE_FILE = "image-checks.json"


class UnreadableImages(ValueError):
    """Image files PIL cannot decode; the message names how many and the first few, with why."""

    def __init__(self, root: str, bad: list[tuple[str, str]]):
        shown = "; ".join(f"{os.path.relpath(path, root)}: {reason}" for path, reason in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        super().__init__(f"ImageFolder '{root}' has {len(bad)} unreadable image file(s) ({shown}{more}): remove or "
                         "replace them, or pass --skip-bad-images to train without them")
        self.bad = bad


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plateau-sweep" / CACHE_FILE


def _why_unreadable(path: str) -> str | None:
    """None when PIL decodes the whole file, else the reason in a few words."""
    try:
        with Image.open(path) as image:
            image.load()  # a full decode: verify() passes truncated files
    except Exception as error:  # PIL raises many kinds: any of them ends a trial
        return " ".join(str(error).split())[:80] or type(error).__name__
    return None


def unreadable_images(paths: list[str], workers: int | None = None) -> list[tuple[str, str]]:
    """(path, reason) of each file PIL cannot decode, in the order of ``paths``."""
    cache_file = cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    keys = {}
    for path in paths:
        try:
            stat = os.stat(path)
            keys[path] = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError as error:
            keys[path] = f"missing:{error.errno}"
    todo = [path for path in paths if cache.get(path, [None])[0] != keys[path]]
    if todo:
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
            for path, reason in zip(todo, pool.map(_why_unreadable, todo)):
                cache[path] = [keys[path], reason]
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(cache))
            temporary.replace(cache_file)  # atomic: a concurrent worker reads the old or the new file, never half
        except OSError as error:  # a read-only home: check again next time
            log.debug("image check cache not written: %s", error)
    return [(path, cache[path][1]) for path in paths if cache[path][1] is not None]
