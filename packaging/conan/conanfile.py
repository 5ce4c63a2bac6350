"""Conan 2 recipe for p4lm (header-only).

    conan create packaging/conan --build=missing

The package exposes the same CMake target as an install: find_package(p4lm) -> p4lm::p4lm.
"""
import os

from conan import ConanFile
from conan.tools.cmake import CMake, cmake_layout
from conan.tools.files import copy


class P4lmConan(ConanFile):
    name = "p4lm"
    version = "0.1.0"
    license = "MIT"
    description = "Header-only C++20 P4LM: factual and personalized recommendations with LMs and RL"
    topics = ("machine-learning", "recommender-systems", "language-models", "header-only")
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeToolchain", "CMakeDeps"
    no_copy_source = True

    def export_sources(self):
        # The recipe lives two folders below the sources it packages.
        root = os.path.join(self.recipe_folder, "..", "..")
        for pattern in ("CMakeLists.txt", "CMakePresets.json", "LICENSE", "cmake/*", "include/*", "data/*"):
            copy(self, pattern, root, self.export_sources_folder)

    def requirements(self):
        self.requires("xtensor/0.24.7")
        self.requires("xtensor-blas/0.20.0")
        self.requires("xsimd/8.1.0")
        self.requires("openblas/0.3.25")
        self.requires("boost/1.83.0", options={"header_only": True})
        self.requires("nlohmann_json/3.11.2")

    def layout(self):
        cmake_layout(self)

    def package_id(self):
        self.info.clear()

    def build(self):
        cmake = CMake(self)
        cmake.configure(variables={"P4LM_BUILD_TESTS": "OFF", "P4LM_BUILD_EXAMPLES": "OFF",
                                   "P4LM_BUILD_TOOLS": "OFF", "P4LM_BUILD_BENCHMARKS": "OFF",
                                   "P4LM_INSTALL": "ON", "P4LM_ARCH": "none"})

    def package(self):
        cmake = CMake(self)
        cmake.install()
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        # Let consumers use p4lm's own exported config (find_dependency for every dependency).
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.builddirs = [os.path.join("share", "cmake", "p4lm")]
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
