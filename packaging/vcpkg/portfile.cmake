# vcpkg port for p4lm (header-only). Use as an overlay port:
#   vcpkg install p4lm --overlay-ports=<p4lm>/packaging/vcpkg
# It builds from the source tree this file sits in; a registry port would use vcpkg_from_git instead.
# The options and dependencies are kept in step with CMakeLists.txt, cmake/P4lmDependencies.cmake and
# packaging/conan/conanfile.py; tests/consumer/check_packaging.cmake (ctest consumer/packaging) fails
# when they drift, and installs the tree this port produces to check its layout.
set(VCPKG_BUILD_TYPE release)
get_filename_component(P4LM_SOURCE "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS feature_options FEATURES cuda P4LM_ENABLE_CUDA)

vcpkg_cmake_configure(
  SOURCE_PATH "${P4LM_SOURCE}"
  OPTIONS
    -DP4LM_BUILD_TESTS=OFF
    -DP4LM_BUILD_EXAMPLES=OFF
    -DP4LM_BUILD_TOOLS=OFF
    -DP4LM_BUILD_BENCHMARKS=OFF
    -DP4LM_BUILD_FUZZERS=OFF
    -DP4LM_INSTALL=ON
    -DP4LM_ARCH=none
    # The installed config is MPI-free either way (docs/distributed.md: a consumer defines
    # P4LM_WITH_MPI and links MPI itself), so the package does not build the MPI tests.
    -DP4LM_ENABLE_MPI=OFF
    ${feature_options})
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/p4lm)
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")
vcpkg_install_copyright(FILE_LIST "${P4LM_SOURCE}/LICENSE")
