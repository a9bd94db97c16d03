"""Checks on deploy/compose.yaml that the Compose schema cannot make.

    python3 check_compose.py compose.yaml

For `docker compose up` to give a working stack:

- every service that runs ferrostack gets a run config through FERROSTACK_CONFIG, mounted from a
  file of this repository, and every `${env.NAME}` that file needs (no `:=` default, no `:+`) is
  set in the service's environment;
- `migrate` waits for a healthy PostgreSQL, and `ferrostack` waits for `migrate` to have
  succeeded;
- the engine URL's default names a service of the stack, and the OTLP endpoint names the
  collector service.

Exits 1 with one line per problem. Needs PyYAML only (which also resolves the `<<:` merge keys).
"""

import os
import re
import sys
from urllib.parse import urlparse

import yaml

REQUIRED_VAR = re.compile(r"\$\{env\.([A-Z0-9_]+)\}")


def main(path):
    problems = []
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose["services"]

    def default_of(value):
        """`${X:-default}` -> default; a plain value stays as it is."""
        m = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", str(value))
        return m.group(1) if m else str(value)

    for name, service in services.items():
        env = service.get("environment") or {}
        config_path = env.get("FERROSTACK_CONFIG")
        if not config_path or service.get("entrypoint"):
            continue
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts[target] = os.path.join(base, source)
        source = mounts.get(config_path)
        if source is None or not os.path.isfile(source):
            problems.append(f"{name}: FERROSTACK_CONFIG {config_path} is not mounted from a file of the repository")
            continue
        with open(source, encoding="utf-8") as f:
            text = "\n".join(line.split("#", 1)[0] for line in f)
        for var in sorted(set(REQUIRED_VAR.findall(text))):
            if default_of(env.get(var, "")) == "":
                problems.append(f"{name}: {os.path.relpath(source, base)} needs {var}, which the service does not set")

    def needs(service, other, condition):
        got = ((services.get(service, {}).get("depends_on") or {}).get(other) or {}).get("condition")
        if got != condition:
            problems.append(f"{service}: must depend on {other} with condition {condition}, has {got}")

    needs("migrate", "postgres", "service_healthy")
    needs("ferrostack", "migrate", "service_completed_successfully")
    server_env = services.get("ferrostack", {}).get("environment") or {}
    for var in ("VLLM_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        host = urlparse(default_of(server_env.get(var, ""))).hostname
        if host not in services:
            problems.append(f"ferrostack: {var} points at {host}, which is not a service of the stack")

    for p in problems:
        print(f"ERROR {path}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
