# Sourced before an amd64 `cargo build --profile dist` (packaging/build-debs.sh,
# benches/compare/run.sh), so the size reported is the size shipped.
#
# Packed relative relocations (DT_RELR): the position-independent binary's
# 0.4 MB of relocation records shrink to a few KB, and it keeps its address
# randomisation. Needs glibc 2.36 or newer at run time, which the .deb
# requires anyway (Depends: libc6 >= 2.36); source builds for older systems
# do not use this file.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C link-arg=-Wl,-z,pack-relative-relocs"
