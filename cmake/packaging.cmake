# Debian package: `cpack -G DEB` in a build tree (or `cmake --build --preset default
# --target package`) gives pmalloc_<version>_<arch>.deb with everything `cmake --install`
# installs: libpmalloc.so, the headers, the pkg-config and CMake package files, and the
# tools pmalloc-run and pmalloc-inspect, under /usr.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pmalloc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Protectable memory allocator: pools made read-only by the MMU, LD_PRELOADable")
set(CPACK_PACKAGE_CONTACT "pmalloc developers <pmalloc@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
# Run-time dependencies come from the binaries (dpkg-shlibdeps): libc6, libstdc++6,
# libgcc-s1, libjemalloc2, libabsl20220623. pmalloc-run needs bash and coreutils, which
# are Essential (never listed). Building against the headers needs the -dev packages that
# pmalloc.pc (Requires.private: jemalloc), pmalloc-cpp.pc and pmallocConfig.cmake
# (find_dependency(absl)) name: recommended, not required, for users who only preload.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libjemalloc-dev, libabsl-dev, pkg-config")
# A shlibs file and the ldconfig trigger for libpmalloc.so.0.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
# Tests, benchmarks and examples install nothing; only the default component exists.
include(CPack)
