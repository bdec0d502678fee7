# `cmake --install <build> --component dev`: the public headers, br_core and br_shell (static)
# and a CMake package, so that an outside project embeds the server with
#   find_package(BoundaryRealtime REQUIRED)
#   target_link_libraries(app PRIVATE BoundaryRealtime::realtime)
# tests/install builds every example that way (ctest label `install`).
#
# Everything here is COMPONENT dev; the server binary belongs to another component.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BR_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/BoundaryRealtime)

# Installed as libboundary_realtime_{core,shell}.a: br_* is too short a name for /usr/lib.
set_target_properties(br_core PROPERTIES EXPORT_NAME core OUTPUT_NAME boundary_realtime_core)
set_target_properties(br_shell PROPERTIES EXPORT_NAME shell OUTPUT_NAME boundary_realtime_shell)

install(TARGETS br_core br_shell br_realtime
  EXPORT BoundaryRealtimeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The headers of include/ only: they need Boost headers (Boost.JSON, Boost.System) and nothing
# from src/, which stays private to the build.
install(DIRECTORY include/boundary
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT dev
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT BoundaryRealtimeTargets
  NAMESPACE BoundaryRealtime::
  DESTINATION ${BR_INSTALL_CMAKEDIR}
  COMPONENT dev)

configure_package_config_file(cmake/BoundaryRealtimeConfig.cmake.in
  ${CMAKE_BINARY_DIR}/BoundaryRealtimeConfig.cmake
  INSTALL_DESTINATION ${BR_INSTALL_CMAKEDIR})
# Before 1.0 a minor version may change the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/BoundaryRealtimeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${CMAKE_BINARY_DIR}/BoundaryRealtimeConfig.cmake
  ${CMAKE_BINARY_DIR}/BoundaryRealtimeConfigVersion.cmake
  DESTINATION ${BR_INSTALL_CMAKEDIR}
  COMPONENT dev)
