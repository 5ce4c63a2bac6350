# install(EXPORT) of p4lm::p4lm (and p4lm::cuda), headers, the bundled data and a
# version file that ignores the architecture (header-only).
install(TARGETS p4lm EXPORT p4lmTargets)
if(TARGET p4lm_cuda)
  install(TARGETS p4lm_cuda EXPORT p4lmTargets)
endif()
install(DIRECTORY include/p4lm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY data/ DESTINATION ${CMAKE_INSTALL_DATADIR}/p4lm/data)
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/p4lm)

set(P4LM_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/p4lm)
install(EXPORT p4lmTargets NAMESPACE p4lm:: DESTINATION ${P4LM_CMAKE_DIR})
configure_package_config_file(cmake/p4lmConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/p4lmConfig.cmake INSTALL_DESTINATION ${P4LM_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_DATADIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/p4lmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/p4lmConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/p4lmConfigVersion.cmake
        DESTINATION ${P4LM_CMAKE_DIR})
if(TARGET p4lm_tool)
  install(TARGETS p4lm_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
