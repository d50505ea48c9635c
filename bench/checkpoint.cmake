# bench/checkpoint.cmake -- checkpoint save/load throughput against raw
# O_DIRECT disk throughput, and consolidation's time and memory.
if(TARGET MPI::MPI_C)
  add_executable(bench_checkpoint ${CMAKE_CURRENT_LIST_DIR}/bench_checkpoint.c)
  target_link_libraries(bench_checkpoint PRIVATE dszero MPI::MPI_C)
endif()
