"""The client and the CVAT nuclio functions install and run without torch: a fresh venv under
.build/ gets exactly the wheels a nuclio function image installs (labelgate-client and
labelgate-cvat, built by clients/cvat/nuclio/bundle.py as `make cvat-nuclio` does) and imports
the SDK and both functions' handlers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".build" / "light-install-venv"

CHECK = r'''
import importlib.util, json, sys
from types import SimpleNamespace
assert importlib.util.find_spec("torch") is None, "torch is installed"
from labelgate.client import AsyncClient, Client
heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "sam2", "transformers", "cv2")]
assert not heavy, heavy

class Response:
    def __init__(self, body, headers, content_type, status_code):
        self.body, self.status_code = body, status_code

replies = {}
for name in ("sam2-interactor", "gdino-detector", "sam3-detector", "sam2-tracker"):
    sys.path.insert(0, sys.argv[1] + "/" + name)
    main = __import__("main")
    context = SimpleNamespace(Response=Response, user_data=SimpleNamespace(),
                              logger=SimpleNamespace(info=print, warn=print, error=print))
    main.init_context(context)
    reply = main.handler(context, SimpleNamespace(body=b'{"image": "not base64!"}'))
    replies[name] = (reply.status_code, json.loads(reply.body)["error"])
    sys.path.pop(0)
    del sys.modules["main"]
print(json.dumps(replies))
'''


def test_client_and_nuclio_functions_install_without_torch(tmp_path):
    bundled = tmp_path / "functions"
    subprocess.run([sys.executable, str(ROOT / "clients/cvat/nuclio/bundle.py"), "--into", str(bundled)],
                   check=True, capture_output=True, timeout=300)
    wheels = sorted(path.name for path in (bundled / "sam2-interactor" / "wheels").iterdir())
    assert [name.split("-")[0] for name in wheels] == ["labelgate_client", "labelgate_cvat"]
    for name in ("gdino-detector", "sam3-detector", "sam2-tracker"):
        assert wheels == sorted(path.name for path in (bundled / name / "wheels").iterdir())

    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(VENV)], check=True, timeout=120)
    # This venv's pip installs into the fresh one (--python): quicker than bootstrapping a pip there.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(VENV / "bin/python"), "install", "-q",
                    *map(str, (bundled / "sam2-interactor/wheels").iterdir())], check=True, timeout=600)
    done = subprocess.run([str(VENV / "bin/python"), "-c", CHECK, str(bundled)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    replies = done.stdout.strip().splitlines()[-1]
    assert replies.count("400") == 4 and replies.count("not valid base64") == 4
