#!/usr/bin/env bash
# Compiles the eBPF programs the recorder embeds (include_bytes!) and records the hash of
# each source next to its object. Run after editing a .bpf.c file and commit both outputs;
# the recorder's test `native::loader::tests::object_is_current` fails while they differ.
#
# Needs clang and libbpf headers (Debian: apt-get install clang libbpf-dev).
set -euo pipefail
cd "$(dirname "$0")"
for src in *.bpf.c; do
    obj="${src%.c}.o"
    clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
        -fdebug-prefix-map="$PWD"=ebpf -c "$src" -o "$obj"
    sha256sum "$src" | cut -d' ' -f1 > "$obj.source-sha256"
    echo "built ebpf/$obj ($(stat -c %s "$obj") bytes) from ebpf/$src"
done
