# The server's install rules (component `server`) and its Debian package (CPack).
#   cd build/release && cpack -G DEB -D CPACK_COMPONENTS_ALL=server     (or: make package)
# The package holds the `server` component only; other components (the library's `dev`) are
# installed with `cmake --install . --component <name>` and never end up in this .deb.
include(GNUInstallDirs)

install(TARGETS realtime-server RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
# Absolute paths: Debian's locations whatever the prefix (the unit and the conffile are read from
# exactly there).
install(FILES ${CMAKE_SOURCE_DIR}/packaging/realtime-server.service DESTINATION /lib/systemd/system COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/config.toml DESTINATION /etc/boundary-realtime COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/operations.md ${CMAKE_SOURCE_DIR}/docs/protocol.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/realtime-server COMPONENT server)
install(FILES ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/realtime-server
        RENAME copyright COMPONENT server)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME realtime-server)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Boundary Realtime contributors")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "WebSocket server for real-time messaging (JWT auth, pub/sub, HTTP API)")
set(CPACK_PACKAGE_CONTACT "Boundary Realtime contributors <realtime@boundary.invalid>")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
set(CPACK_STRIP_FILES ON)

set(CPACK_COMPONENTS_ALL server)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)  # one realtime-server_<version>_<arch>.deb

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # Depends: from the binary's libraries (dpkg-shlibdeps)
set(CPACK_PACKAGE_DESCRIPTION
    "JWT-authenticated WebSocket connections, routing to users, roles, topics and connections, an HTTP API for backends, Prometheus metrics, and cluster mode over Redis.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/conffiles ${CMAKE_SOURCE_DIR}/packaging/postinst
    ${CMAKE_SOURCE_DIR}/packaging/prerm ${CMAKE_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
