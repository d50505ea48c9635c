# bench_moe.cmake -- MoE dispatch/combine all-to-all against raw MPI_Alltoall
# (include()d from bench/CMakeLists.txt). Needs the MPI backend.
if(TARGET MPI::MPI_C)
  add_executable(bench_moe ${CMAKE_CURRENT_LIST_DIR}/bench_moe.c)
  target_link_libraries(bench_moe PRIVATE dszero MPI::MPI_C)
endif()
