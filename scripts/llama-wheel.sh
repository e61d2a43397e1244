#!/usr/bin/env bash
# Builds (once per machine and flag set) the llama-cpp-python wheel and prints its path.
# pip's own wheel cache is keyed by version, not by CMAKE_ARGS, and would hand back a
# wheel built with other flags, so we keep our own cache keyed by both.
set -euo pipefail
python=${1:?usage: llama-wheel.sh PYTHON}
version=${LLAMA_CPP_VERSION:-0.3.36}
here=$(cd "$(dirname "$0")" && pwd)
args=$("$here/llama-cmake-args.sh")
key=$(printf '%s %s %s' "$version" "$args" "$("$python" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
dir=${PROMPTASCENT_WHEEL_CACHE:-$HOME/.cache/promptascent/wheels}/$key
wheel=$(ls "$dir"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $version (5-10 minutes on 2 cores, once per machine)" >&2
  echo "CMAKE_ARGS=$args" >&2
  tmp=$(mktemp -d)
  CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$python" -m pip wheel --no-cache-dir --no-deps -w "$tmp" "llama-cpp-python==$version" >&2
  mkdir -p "$dir"
  mv "$tmp"/llama_cpp_python-*.whl "$dir"/
  rm -rf "$tmp"
  wheel=$(ls "$dir"/llama_cpp_python-*.whl | head -n1)
fi
echo "$wheel"
