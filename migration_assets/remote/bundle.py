"""Build what EMR Serverless or Glue needs to run the Pipes entry point.

`python -m migration_assets.remote.bundle dist/pipes` (or `make pipes-bundle`) writes:
- `convert_entry.py`: the entry point (EMR Serverless `entryPoint`, Glue `ScriptLocation`);
- `migration_assets.zip`: the package, importable from the zip (`--py-files`,
  `--extra-py-files`); byte-identical for identical sources (sorted, fixed timestamps);
- `requirements.txt`: the remote's third-party packages at this project's locked versions
  (Glue `--additional-python-modules`, or the EMR Serverless virtualenv archive).
Upload the three to S3; the README ("Running beyond one machine") shows where each goes.
"""

from __future__ import annotations

import re
import shutil
import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
LOCK = PACKAGE.parent / "requirements.lock"
# what convert_entry.py imports, directly or through the conversion modules
REMOTE_REQUIREMENTS = ("pyarrow", "numpy", "isal", "PyYAML", "boto3", "dagster-pipes")


def locked_requirements(lock: Path = LOCK) -> list[str]:
    """`name==version` for each remote requirement, from the lock file."""
    versions = {}
    for line in lock.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip()):
            versions[match[1].lower().replace("_", "-")] = f"{match[1]}=={match[2]}"
    missing = [name for name in REMOTE_REQUIREMENTS if name.lower() not in versions]
    if missing:
        raise ValueError(f"{lock} does not pin {', '.join(missing)}")
    return [versions[name.lower()] for name in REMOTE_REQUIREMENTS]


def build_bundle(out: Path) -> dict[str, Path]:
    """Write the entry point, the package zip and the requirements into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    entry = out / "convert_entry.py"
    shutil.copyfile(PACKAGE / "remote" / "convert_entry.py", entry)
    archive = out / "migration_assets.zip"
    files = sorted(
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".yaml")
    )
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(PACKAGE.parent)), (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            bundle.writestr(info, path.read_bytes())
    requirements = out / "requirements.txt"
    requirements.write_text("\n".join(locked_requirements()) + "\n")
    return {"entry_point": entry, "package": archive, "requirements": requirements}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/pipes")
    for what, path in build_bundle(target).items():
        print(f"{what}: {path}")
