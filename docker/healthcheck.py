"""Container health check: the service answers /readyz with 200 (stdlib only): the database
answers, its schema is current and a worker (another container, or embedded) is alive."""

import os
import sys
import urllib.request

port = os.environ.get("INCIDENT_PORT", "8000")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except OSError:
    sys.exit(1)
