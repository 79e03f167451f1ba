#!/usr/bin/env bash
# Checks every deployment file with the tool made for it (run by .ci/run):
#
#   Dockerfile                  hadolint, checkov
#   deploy/compose/compose.yaml docker-compose config (Debian's docker-compose)
#   .github/workflows/*.yml     actionlint (with shellcheck on the run: scripts), checkov
#   deploy/k8s/                 kubernetes-validate against Kubernetes $K8S_VERSION, checkov,
#                               and the kustomization lists every manifest
#   deploy/tofu/                python-hcl2 parse and variable checks, checkov
#   shell scripts               shellcheck
#
# The tools are Python wheels pinned in .ci/tools/*.txt (every dependency too), each set
# in its own virtualenv under $GOTICKET_TOOLS (default ~/.cache/goticket/tools), made
# again when its pin file changes. checkov and python-hcl2 each bring a module named
# hcl2, hence two environments. Nothing here needs the network once they are installed.
#
#   scripts/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.33.0
tools="${GOTICKET_TOOLS:-$HOME/.cache/goticket/tools}"

# venv NAME: a virtualenv with exactly the pins of .ci/tools/NAME.txt; prints its bin/.
venv() {
    local pins=".ci/tools/$1.txt" sum dir
    sum=$(sha256sum "$pins" | cut -c1-16)
    dir="$tools/$1-$sum"
    if [ ! -x "$dir/bin/python" ] || [ ! -e "$dir/.complete" ]; then
        rm -rf "$dir"
        python3 -m venv "$dir" >&2
        "$dir/bin/pip" install -q --no-deps --only-binary=:all: -r "$pins" >&2
        touch "$dir/.complete"
    fi
    echo "$dir/bin"
}
lint=$(venv lint)
checkov_bin=$(venv checkov)
export PATH="$lint:$PATH"
failed=0
step() {
    echo "check-deploy: $*" >&2
    if ! "$@"; then
        echo "check-deploy: FAILED: $*" >&2
        failed=1
    fi
}
checkov() {
    # --skip-download: no call home for policies or guidelines (CI has no internet).
    "$checkov_bin/checkov" --quiet --compact --skip-download "$@"
}

step hadolint Dockerfile
step checkov -f Dockerfile --framework dockerfile

step docker-compose -f deploy/compose/compose.yaml config -q

step actionlint .github/workflows/*.yml
step checkov -d .github/workflows --framework github_actions

step python scripts/check-deploy.py kustomization deploy/k8s
for f in deploy/k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    step kubernetes-validate --kubernetes-version "$K8S_VERSION" --strict --quiet "$f"
done
step checkov -d deploy/k8s --framework kubernetes

step python scripts/check-deploy.py tofu deploy/tofu
step checkov -d deploy/tofu --framework terraform

step shellcheck --severity=warning .ci/run scripts/*.sh deploy/compose/secrets.sh

if [ "$failed" != 0 ]; then
    echo "check-deploy: some deployment file failed its check (see above)" >&2
    exit 1
fi
echo "check-deploy: every deployment file passed its checks" >&2
