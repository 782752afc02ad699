#!/usr/bin/env bash
# The MONAI Label server environment .venv-monailabel: monailabel 0.8.5 on top of the active (project) environment.
# It is its own venv because monailabel 0.8.5 needs pydicom < 3 (see requirements-monailabel.txt) and the project is
# tested with pydicom 3; the project's packages (torch, monai, medssl_monai ...) are reused from the active
# environment through a .pth file, so nothing of them is installed twice and no torch is downloaded.
# Idempotent; run after scripts/setup.sh (which calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
ENV=.venv-monailabel
[ -x "$ENV/bin/python" ] || "$PY" -m venv "$ENV"
PARENT=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
CHILD=$("$ENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "import site; site.addsitedir('$PARENT')" > "$CHILD/_medssl_parent_env.pth"
# the venv's own (older) setuptools would shadow the project's
"$ENV/bin/python" -m pip uninstall --quiet --yes setuptools 2>/dev/null || true
"$ENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-monailabel.txt
"$ENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps monailabel==0.8.5 pydicom-seg==0.4.1
"$ENV/bin/python" - <<'PYEOF'
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):  # monailabel.app prints its CORS origins at import
    import monailabel.app, medssl_monai.monailabel.tasks
import monailabel, torch
print(f"MONAI Label server env: monailabel {monailabel.__version__} | torch {torch.__version__}")
PYEOF
