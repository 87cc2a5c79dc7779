"""What every benchmark records about the model file it ran.

A path alone does not say which model was measured: the bundled model is rebuilt in place and
studies score copies taken from git. The digest does, and matches ``sha256sum FILE``.
"""

import hashlib
from pathlib import Path


def model_file(path) -> dict:
    data = Path(path).read_bytes()
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
