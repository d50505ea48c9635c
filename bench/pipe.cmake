# bench/pipe.cmake -- the pipeline benchmark (needs the MPI backend).
if(TARGET MPI::MPI_C)
  add_executable(bench_pipe ${CMAKE_CURRENT_LIST_DIR}/bench_pipe.c)
  target_link_libraries(bench_pipe PRIVATE dszero MPI::MPI_C m)
endif()
