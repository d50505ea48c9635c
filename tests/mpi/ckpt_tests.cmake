# ckpt_tests.cmake -- checkpoint tests that need several processes (included
# from tests/CMakeLists.txt when the MPI backend is built).
#   ckpt_reshard_np4   save at one world size / stage, load at another
#   ckpt_resume_np*    save, load in a fresh mpirun job, continue: bit for bit
#   ckpt_kill_mpirun_np2  kill -9 a 2-rank saving job at random moments
#   ckpt_consolidate_safetensors  dsz consolidate, read back by torch and safetensors
add_executable(ckpt_reshard ${CMAKE_CURRENT_SOURCE_DIR}/mpi/ckpt_reshard.c)
target_link_libraries(ckpt_reshard PRIVATE dszero MPI::MPI_C m)
add_test(NAME ckpt_reshard_np4
  COMMAND ${MPIEXEC_EXECUTABLE} -np 4 --bind-to none $<TARGET_FILE:ckpt_reshard>)
set_tests_properties(ckpt_reshard_np4 PROPERTIES
  ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;checkpoint" TIMEOUT 300 PROCESSORS 4)

add_executable(ckpt_resume ${CMAKE_CURRENT_SOURCE_DIR}/mpi/ckpt_resume.c)
target_link_libraries(ckpt_resume PRIVATE dszero MPI::MPI_C m)
foreach(np 1 2)
  add_test(NAME ckpt_resume_np${np}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run_resume.sh ${MPIEXEC_EXECUTABLE} ${np} $<TARGET_FILE:ckpt_resume>)
  set_tests_properties(ckpt_resume_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;checkpoint" TIMEOUT 300 PROCESSORS ${np})
endforeach()

# ckpt_kill (tests/CMakeLists.txt) with a 2-rank mpirun job as the saver: every process of the job killed
add_test(NAME ckpt_kill_mpirun_np2
  COMMAND ckpt_kill ${PROJECT_BINARY_DIR}/ckpt_kill_mpirun 12 25 ${MPIEXEC_EXECUTABLE} 2)
set_tests_properties(ckpt_kill_mpirun_np2 PROPERTIES
  ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "checkpoint;mpi" TIMEOUT 120 PROCESSORS 2)

# dsz consolidate: checkpoints of 2 ranks -> safetensors, read back with torch
# and with the safetensors package (installed into a venv by a fixture).
add_executable(ckpt_consolidate ${CMAKE_CURRENT_SOURCE_DIR}/mpi/ckpt_consolidate.c)
target_link_libraries(ckpt_consolidate PRIVATE dszero MPI::MPI_C m)
add_test(NAME safetensors_venv
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/make_venv.sh ${PROJECT_BINARY_DIR}/venv-st)
set_tests_properties(safetensors_venv PROPERTIES FIXTURES_SETUP safetensors LABELS "checkpoint" TIMEOUT 240)
add_test(NAME ckpt_consolidate_safetensors
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/run_consolidate.sh ${MPIEXEC_EXECUTABLE}
          $<TARGET_FILE:ckpt_consolidate> $<TARGET_FILE:dsz>
          ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/read_safetensors.py ${PROJECT_BINARY_DIR}/venv-st)
set_tests_properties(ckpt_consolidate_safetensors PROPERTIES
  FIXTURES_REQUIRED safetensors SKIP_RETURN_CODE 77
  ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;checkpoint" TIMEOUT 300 PROCESSORS 2)
