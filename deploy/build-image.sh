#!/usr/bin/env bash
# Build the tweetdesk image (Containerfile) with buildah.
#
#   deploy/build-image.sh [--base IMAGE] [--local-base] [--tag NAME]
#
# --base IMAGE   base image (default: the public debian:bookworm-slim). Where that cannot be pulled (no registry
#                reachable) and no --base was given, a Debian bookworm base is made from Debian's repository with
#                mmdebstrap and used instead (localhost/tweetdesk-base:bookworm, made once).
# --local-base   use (and if needed make) that mmdebstrap base without trying the registry.
# --tag NAME     image name (default localhost/tweetdesk); tagged :<version> and :latest.
#
# Steps: a wheelhouse of every dependency is built on the host with `pip wheel` (cached in build/wheelhouse until
# pyproject.toml changes; set TORCH_INDEX=https://download.pytorch.org/whl/cpu where pip would otherwise pick the
# CUDA build of torch), the tweetdesk wheel is built fresh, both go into the build context build/image/, and
# `buildah bud --layers` builds with chroot isolation, reusing cached layers when only the code changed.
# Environment: PYTHON (a Python 3.11 with pip, default python3), BUILDAH_ISOLATION (default chroot).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
# Any step that fails says which command it was: under set -e a failing step would otherwise end the script silently.
trap 'rc=$?; echo "build-image: error: line $LINENO: \`$BASH_COMMAND\` exited $rc" >&2; exit $rc' ERR

DEFAULT_BASE=docker.io/library/debian:bookworm-slim
LOCAL_BASE=localhost/tweetdesk-base:bookworm
base="" local_base=0 name=localhost/tweetdesk
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="${2:?--base needs an image}"; shift 2 ;;
    --base=*) base="${1#--base=}"; shift ;;
    --local-base) local_base=1; shift ;;
    --tag) name="${2:?--tag needs a name}"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-image: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "build-image: $*" >&2; }
die() { echo "build-image: error: $*" >&2; exit 1; }
started=$(date +%s)

command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah)"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$PYTHON is not Python 3.11: the wheelhouse must match the image's Python (bookworm's 3.11)"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

make_local_base() {
  if buildah inspect --type image "$LOCAL_BASE" >/dev/null 2>&1; then return; fi
  command -v mmdebstrap >/dev/null || die "no base image: $DEFAULT_BASE cannot be pulled and mmdebstrap is not installed"
  say "making $LOCAL_BASE from Debian's repository (mmdebstrap --variant=minbase bookworm)"
  local tmp ctr
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mmdebstrap --quiet --variant=minbase bookworm "$tmp/base.tar"
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$tmp/base.tar" / >/dev/null
  buildah config --cmd /bin/bash --label "org.opencontainers.image.description=Debian bookworm minbase (mmdebstrap)" "$ctr"
  buildah commit --quiet --rm "$ctr" "$LOCAL_BASE" >/dev/null
}

if [ "$local_base" = 1 ]; then
  make_local_base; base="$LOCAL_BASE"
elif [ -z "$base" ]; then
  if buildah inspect --type image "$DEFAULT_BASE" >/dev/null 2>&1 || buildah pull --quiet "$DEFAULT_BASE" >/dev/null 2>&1; then
    base="$DEFAULT_BASE"
  else
    say "$DEFAULT_BASE cannot be pulled (no registry reachable?): using a local Debian bookworm base"
    make_local_base; base="$LOCAL_BASE"
  fi
elif ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  buildah pull --quiet "$base" >/dev/null || die "cannot pull base image $base"
fi

# --- wheelhouse (dependencies): rebuilt only when pyproject.toml or the Python version changes -------------
wheelhouse=build/wheelhouse
key=$( { sha256sum pyproject.toml; "$PYTHON" -VV; echo "${TORCH_INDEX:-}"; } | sha256sum | cut -c1-16)
if [ "$(cat "$wheelhouse/.key" 2>/dev/null)" != "$key" ]; then
  say "building the wheelhouse with pip wheel (dependencies of pyproject.toml; takes a few minutes the first time)"
  rm -rf "$wheelhouse"; mkdir -p "$wheelhouse"
  extra=(); [ -n "${TORCH_INDEX:-}" ] && extra=(--extra-index-url "$TORCH_INDEX")
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check "${extra[@]}" --wheel-dir "$wheelhouse/deps" . \
    || die "pip wheel failed"
  rm -f "$wheelhouse"/deps/tweetdesk-*.whl
  echo "$key" > "$wheelhouse/.key"
else
  say "wheelhouse up to date ($(ls "$wheelhouse/deps" | wc -l) wheels)"
fi

# --- build context: the wheelhouse (hard links), its requirements list, the tweetdesk wheel ------------------
ctx=build/image
rm -rf "$ctx"; mkdir -p "$ctx/app"
cp -al "$wheelhouse/deps" "$ctx/wheels" 2>/dev/null || cp -a "$wheelhouse/deps" "$ctx/wheels"
"$PYTHON" - "$ctx" <<'EOF'
import pathlib, re, sys
ctx = pathlib.Path(sys.argv[1])
lines = []
for whl in sorted((ctx / "wheels").glob("*.whl")):
    name, version = whl.name.split("-")[:2]
    lines.append(f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}")
(ctx / "requirements.txt").write_text("\n".join(lines) + "\n")
EOF
say "building the tweetdesk wheel"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$ctx/app" . || die "pip wheel . failed"
cp deploy/warm-bytecode.py "$ctx/app/"
(cd "$ctx/app" && sha256sum ./*.whl ./warm-bytecode.py) > "$ctx/app.sha256"

version=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then revision="$revision-dirty"; fi
source_url=$(git config --get remote.origin.url 2>/dev/null || echo unknown)

# the image the tags point to now: once they move to the new build it is untagged, and each build would leave one
# more (2.6 GB, mostly shared layers) behind, until the disk fills
# (awk reads all of its input: `head -1` may exit before buildah has written, and under pipefail the SIGPIPE that
# buildah then gets (exit 141) would fail a build that succeeded)
# (the first build on a machine has none: buildah then exits 125, "image not known", which is no error here)
previous=""
if buildah inspect --type image "$name:$version" >/dev/null 2>&1; then
  previous=$(buildah images --quiet --no-trunc "$name:$version" | awk 'NR == 1')
fi
say "buildah bud (base $base, isolation $BUILDAH_ISOLATION)"
buildah bud --layers --format docker --network host \
  --build-arg BASE="$base" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --build-arg SOURCE="$source_url" \
  -f Containerfile -t "$name:$version" -t "$name:latest" "$ctx"

current=$(buildah images --quiet --no-trunc "$name:$version" | awk 'NR == 1')
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  # still in use (another tag, a container): buildah refuses, and it stays
  buildah rmi "$previous" >/dev/null 2>&1 && say "removed the previous build ${previous#sha256:}" || true
fi
size=$(buildah images --format '{{.Size}}' "$name:$version" | awk 'NR == 1')
say "built $name:$version (and :latest): $size, in $(( $(date +%s) - started )) s"
