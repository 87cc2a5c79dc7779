"""What every benchmark records about the model file it ran.

A path alone does not say which model was measured: the bundled model is rebuilt in place and
studies score copies taken from git. The digest does, and matches ``sha256sum FILE``. The path
is written as ``kwspi eval-stream`` writes its inputs' (relative to the working directory when it
lies under it), so a committed report does not carry the name of the machine's folders.
"""

import hashlib
from pathlib import Path

from kwspi.deploy.evaluation.stream import shown


def model_file(path) -> dict:
    data = Path(path).read_bytes()
    return {"path": str(shown(path)), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
