#!/usr/bin/env bash
# Prints the CMAKE_ARGS for building llama-cpp-python on this CPU.
# GGML_NATIVE=ON crashes on CPUs with AMX (see docs/install.md), so we turn
# native off and enable each instruction set the CPU reports, never AMX.
set -euo pipefail
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]]; }
args="-DGGML_NATIVE=OFF"
has avx && args+=" -DGGML_AVX=ON" || args+=" -DGGML_AVX=OFF"
has avx2 && args+=" -DGGML_AVX2=ON" || args+=" -DGGML_AVX2=OFF"
has fma && args+=" -DGGML_FMA=ON" || args+=" -DGGML_FMA=OFF"
has f16c && args+=" -DGGML_F16C=ON" || args+=" -DGGML_F16C=OFF"
has bmi2 && args+=" -DGGML_BMI2=ON" || args+=" -DGGML_BMI2=OFF"
has avx512f && args+=" -DGGML_AVX512=ON" || args+=" -DGGML_AVX512=OFF"
has avx512_vnni && args+=" -DGGML_AVX512_VNNI=ON" || args+=" -DGGML_AVX512_VNNI=OFF"
has avx_vnni && args+=" -DGGML_AVX_VNNI=ON" || args+=" -DGGML_AVX_VNNI=OFF"
args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
echo "$args"
