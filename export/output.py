"""Build a model directory beside its final place and move it in only when it is complete,
so that a failed export never leaves a half-written model folder behind."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield an empty directory; on success it replaces `out`, on error it is deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Same parent, so the final renames stay on one filesystem and are atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
    try:
        yield staging
        if out.exists():
            retired = staging.with_suffix(".old")
            out.rename(retired)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
