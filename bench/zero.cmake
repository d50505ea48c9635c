# bench/zero.cmake -- the ZeRO step-time benchmark (needs the MPI backend).
if(TARGET MPI::MPI_C)
  add_executable(bench_zero_step ${CMAKE_CURRENT_LIST_DIR}/bench_zero_step.c)
  target_link_libraries(bench_zero_step PRIVATE dszero MPI::MPI_C)
endif()
