# checkpoint.cmake -- the checkpoint's checksums use ISA-L's CRC-32 when
# libisal is installed (the same values as zlib's crc32, about 8x faster:
# with zlib's, checksumming alone is slower than the disk); zlib's otherwise.
pkg_check_modules(ISAL IMPORTED_TARGET libisal)
if(ISAL_FOUND)
  target_compile_definitions(dszero_obj PRIVATE DSZ_HAVE_ISAL=1)
  target_link_libraries(dszero_obj PUBLIC PkgConfig::ISAL)
  target_link_libraries(dszero PRIVATE PkgConfig::ISAL)
else()
  message(STATUS "libisal not found: checkpoint checksums use zlib's slower crc32 (apt-get install libisal-dev)")
endif()
