#!/bin/sh
# get-vgg16-weights.sh: downloads Keras' own VGG16 ImageNet weights into data/weights/.
# Not a mirror or cache manager: one curl per file from the Keras applications storage,
# kept only when complete (written to .part, then renamed).
# Usage: tools/get-vgg16-weights.sh [--notop | --all]   (default: the full file with fc layers)
set -eu

BASE=https://storage.googleapis.com/tensorflow/keras-applications/vgg16
DEST=${DEST:-data/weights}
FULL=vgg16_weights_tf_dim_ordering_tf_kernels.h5
NOTOP=vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5

case "${1:-}" in
  "") files=$FULL ;;
  --notop) files=$NOTOP ;;
  --all) files="$FULL $NOTOP" ;;
  *) echo "usage: $0 [--notop | --all]" >&2; exit 2 ;;
esac

command -v curl >/dev/null 2>&1 || { echo "get-vgg16-weights: curl is not installed (apt-get install curl)" >&2; exit 1; }
mkdir -p "$DEST"
for f in $files; do
  if [ -s "$DEST/$f" ]; then
    echo "get-vgg16-weights: $DEST/$f already present"
    continue
  fi
  echo "get-vgg16-weights: downloading $BASE/$f (about 530 MB full, 56 MB notop)"
  if ! curl -fL --retry 2 --connect-timeout 20 -o "$DEST/$f.part" "$BASE/$f"; then
    rm -f "$DEST/$f.part"
    echo "get-vgg16-weights: could not download $BASE/$f" >&2
    echo "  (no network, or the server refused). Fetch it on a machine with access and copy" >&2
    echo "  it to $DEST/$f; luacap reads that file as it is." >&2
    exit 1
  fi
  mv "$DEST/$f.part" "$DEST/$f"
  echo "get-vgg16-weights: saved $DEST/$f"
done
