# aio.cmake -- build settings of src/aio (included from src/CMakeLists.txt).
#
# libaio has no pkg-config file: find it by hand. Without it (or with
# -DDSZ_WITH_AIO=OFF) src/aio compiles a stub, dsz_features() lacks
# DSZ_FEATURE_AIO and configs asking for NVMe offload are refused with
# DSZ_ERR_UNSUPPORTED. DSZ_HAVE_AIO is public so that the tests know too.
option(DSZ_WITH_AIO "NVMe offload over libaio (when libaio is found)" ON)
if(DSZ_WITH_AIO)
  find_library(DSZ_AIO_LIBRARY NAMES aio)
  find_path(DSZ_AIO_INCLUDE_DIR NAMES libaio.h)
endif()
if(DSZ_WITH_AIO AND DSZ_AIO_LIBRARY AND DSZ_AIO_INCLUDE_DIR)
  target_include_directories(dszero_obj PRIVATE ${DSZ_AIO_INCLUDE_DIR})
  target_link_libraries(dszero_obj PUBLIC ${DSZ_AIO_LIBRARY})
  target_compile_definitions(dszero_obj PUBLIC DSZ_HAVE_AIO=1)
  target_link_libraries(dszero PRIVATE ${DSZ_AIO_LIBRARY})
  message(STATUS "dszero: NVMe offload enabled (${DSZ_AIO_LIBRARY})")
else()
  message(STATUS "dszero: libaio not found or DSZ_WITH_AIO=OFF, building without NVMe offload")
endif()
