#!/usr/bin/env bash
# An emulated ARM64 Python with numpy and onnxruntime, for `check --on` / `bench --on` without ARM hardware.
#
#   bash scripts/arm64_python.sh [CACHE]      # prints the --on command to use
#
# Built from the package registries only: qemu-user-static 10.x from bookworm-backports (bookworm's
# own 7.2 crashes on `import onnxruntime`), Debian's arm64 CPython unpacked into a sysroot with
# dpkg -x (nothing installed for arm64), and the aarch64 wheels of numpy and onnxruntime from
# PyPI (the version this machine's onnxruntime has). Everything lands in CACHE (default
# ~/.cache/ghostexport/arm64) and a second run reuses it. Emulated timings mean nothing; the
# outputs are those of ONNX Runtime's ARM kernels.
set -euo pipefail

CACHE=${1:-${HOME}/.cache/ghostexport/arm64}
SYSROOT="${CACHE}/sysroot"
SITE="${CACHE}/site-packages"
HERE_PYTHON=${PYTHON:-python3}
command_line() {
    echo "env PYTHONPATH=${SITE} PYTHONNOUSERSITE=1 qemu-aarch64-static -L ${SYSROOT} ${SYSROOT}/usr/bin/python3.11"
}
if [ -f "${CACHE}/ready" ]; then
    command_line
    exit 0
fi
mkdir -p "${CACHE}/debs" "${SYSROOT}" "${SITE}"

if ! qemu-aarch64-static --version 2>/dev/null | grep -qE 'version (9|[1-9][0-9])\.'; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/ghostexport-backports.list
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports qemu-user-static >/dev/null
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
fi

packages=(libc6 libgcc-s1 libstdc++6 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
    libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libcrypt1
    libncursesw6 libtinfo6 libreadline8 libdb5.3 libgdbm6)
(cd "${CACHE}/debs" && apt-get download -qq "${packages[@]/%/:arm64}" media-types)
for deb in "${CACHE}"/debs/*.deb; do
    dpkg -x "${deb}" "${SYSROOT}"
done

ort_version=$("${HERE_PYTHON}" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || echo "")
"${HERE_PYTHON}" -m pip download -q --only-binary=:all: --no-deps --platform manylinux_2_28_aarch64 \
    --python-version 3.11 -d "${CACHE}/wheels" numpy "onnxruntime${ort_version:+==${ort_version}}"
for wheel in "${CACHE}"/wheels/*.whl; do
    "${HERE_PYTHON}" -m zipfile -e "${wheel}" "${SITE}"
done

# the proof: ARM64 Python imports ONNX Runtime and reports its CPU provider
$(command_line) -c 'import platform, onnxruntime; print(platform.machine(), onnxruntime.__version__, onnxruntime.get_available_providers())' >&2
touch "${CACHE}/ready"
command_line
