#!/bin/sh
# A file-system metadata load: copies a directory tree into a fresh directory
# under /tmp with tar, walks the copy with find (names, then stat of every
# file), and removes it. Inodes, dentries, journal and page-cache pages come
# and go in bulk.
#   tools/capture/loads/fs_metadata.sh [TREE]      (default /usr/include)
set -eu
tree=${1:-/usr/include}
dir=$(mktemp -d /tmp/kmbench-fsmeta.XXXXXX)
tar -C "$(dirname "$tree")" -cf - "$(basename "$tree")" | tar -C "$dir" -xf -
find "$dir" -name '*.h' | wc -l
find "$dir" -type f -printf '%s %i\n' | wc -l
rm -rf "$dir"
