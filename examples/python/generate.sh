#!/usr/bin/env bash
# Generates the Python client of the Cellar API from proto/ into cellar_pb/
# (gitignored): cellar_pb/cellar/v1/*_pb2.py and *_pb2_grpc.py, and
# cellar_pb/google/rpc/*_pb2.py for the error details of failed calls.
# Put cellar_pb/ on sys.path to import them (backup.py does).
#
# Usage: examples/python/generate.sh   (with grpcio-tools installed; set
# PYTHON to choose the interpreter, default python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
out=$here/cellar_pb
python=${PYTHON:-python3}
# The script changes directory below: make a relative interpreter path absolute.
[[ $python != */* || $python == /* ]] || python=$PWD/$python

if ! "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "generate.sh: grpcio-tools is not installed for $python; run: $python -m pip install -r $here/requirements.txt" >&2
  exit 1
fi

# Generate next to the old output and swap, so a failed run leaves no half.
tmp=$(mktemp -d "$here/.cellar_pb.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$proto"
# grpc_tools.protoc adds its bundled include directory, which has the
# google/protobuf/*.proto files; google/rpc/*.proto are in proto/.
"$python" -m grpc_tools.protoc -I. \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  cellar/v1/*.proto google/rpc/*.proto
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generated $(find "$out" -name '*.py' | wc -l) modules in $out"
