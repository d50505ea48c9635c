# bench/nvme.cmake -- NVMe offload benchmark (needs libaio; bench_nvme.cpp).
if(DSZ_AIO_LIBRARY AND DSZ_WITH_AIO)
  add_executable(bench_nvme ${CMAKE_CURRENT_LIST_DIR}/bench_nvme.cpp)
  target_link_libraries(bench_nvme PRIVATE dszero_static)
endif()
