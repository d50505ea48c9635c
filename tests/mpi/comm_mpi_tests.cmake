# comm_mpi_tests.cmake -- src/comm's multi-process tests (included from
# tests/CMakeLists.txt when the MPI backend is built). Every run is bounded:
# CTest's TIMEOUT, and run_fault.sh's own `timeout` around mpirun.
set(DSZ_MPI_TEST_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_rmaps_base_oversubscribe=1
  ASAN_OPTIONS=detect_leaks=0      # Open MPI's own leaks are not ours
  DSZ_COMM_TIMEOUT=120)            # a broken test fails in 2 min, not 5

# dsz_mpi_test(TARGET RANKS n... LABELS l... TIMEOUT s [ENV VAR=value...]): a
# test TARGET_np<n> per rank count, the executable run under mpirun with the
# shared environment (ENV adds to it; a later value of a variable wins).
function(dsz_mpi_test target)
  cmake_parse_arguments(T "" "TIMEOUT" "RANKS;LABELS;ENV" ${ARGN})
  set(env ${DSZ_MPI_TEST_ENV} ${T_ENV})
  foreach(np ${T_RANKS})
    add_test(NAME ${target}_np${np}
      COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:${target}>)
    set_tests_properties(${target}_np${np} PROPERTIES
      ENVIRONMENT "${env}" LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} PROCESSORS ${np})
  endforeach()
endfunction()

dsz_mpi_test(test_comm_mpi RANKS 2 4 LABELS unit mpi TIMEOUT 300)

add_executable(comm_host_comm ${CMAKE_CURRENT_SOURCE_DIR}/mpi/comm_host_comm.cpp)
target_link_libraries(comm_host_comm PRIVATE dszero_static MPI::MPI_C)
dsz_mpi_test(comm_host_comm RANKS 2 4 LABELS unit mpi TIMEOUT 120)

add_executable(comm_fault ${CMAKE_CURRENT_SOURCE_DIR}/mpi/comm_fault.cpp)
target_link_libraries(comm_fault PRIVATE dszero_static)
# mode, ranks, expected output (ours, or mpirun reporting the dead rank)
set(DSZ_FAULT_CASES
  "late|2|EXPECTED 12: rank 0: all_reduce #3"
  "late|4|EXPECTED 12: rank [0-2]: all_reduce #3"
  "diverge|2|EXPECTED 12: rank 0: .*has sent data for broadcast #3 instead"
  "size|2|EXPECTED 11: rank [01]: all_reduce #3"
  "exit|2|EXPECTED 12|exited|terminated|aborted|killed"
  "exit|4|EXPECTED 12|exited|terminated|aborted|killed"
  "quit|2|EXPECTED 12|exited|terminated|aborted|killed")
foreach(case ${DSZ_FAULT_CASES})
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 mode)
  list(GET parts 1 np)
  list(SUBLIST parts 2 -1 rest)
  string(REPLACE ";" "|" regex "${rest}")
  add_test(NAME comm_fault_${mode}_np${np}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run_fault.sh ${MPIEXEC_EXECUTABLE} ${np}
            $<TARGET_FILE:comm_fault> ${mode} 60 "${regex}")
  set_tests_properties(comm_fault_${mode}_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "unit;mpi;fault" TIMEOUT 90 PROCESSORS ${np})
endforeach()

# ZeRO stages 0-3 across ranks (tests/mpi/zero_parity.c): parity, one-rank
# agreement, global overflow skip, checkpoint resume.
add_executable(zero_parity ${CMAKE_CURRENT_SOURCE_DIR}/mpi/zero_parity.c)
target_link_libraries(zero_parity PRIVATE dszero MPI::MPI_C m)
dsz_mpi_test(zero_parity RANKS 1 2 4 LABELS mpi zero TIMEOUT 300)

# ZeRO stage 3's gather/release lifetimes, prefetch and divergence (tests/mpi/zero_stage3.c);
# 3 ranks give partitions that split parameters unevenly.
add_executable(zero_stage3 ${CMAKE_CURRENT_SOURCE_DIR}/mpi/zero_stage3.c)
target_link_libraries(zero_stage3 PRIVATE dszero MPI::MPI_C)
dsz_mpi_test(zero_stage3 RANKS 1 2 3 LABELS mpi zero TIMEOUT 120 ENV DSZ_COMM_TIMEOUT=30)

# The C example trains under mpirun too (fp16 stage 2 with small buckets, bf16 stages 1 and 3).
add_test(NAME example_train_mlp_zero2_np2
  COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none $<TARGET_FILE:train_mlp>
          ${PROJECT_SOURCE_DIR}/examples/configs/mlp_fp16_zero2.json 200)
add_test(NAME example_train_mlp_bf16_zero1_np2
  COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none $<TARGET_FILE:train_mlp>
          ${PROJECT_SOURCE_DIR}/examples/configs/mlp_bf16.json 200)
add_test(NAME example_train_mlp_bf16_zero3_np2
  COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none $<TARGET_FILE:train_mlp>
          ${PROJECT_SOURCE_DIR}/examples/configs/mlp_bf16_zero3.json 200)
set_tests_properties(example_train_mlp_zero2_np2 example_train_mlp_bf16_zero1_np2 example_train_mlp_bf16_zero3_np2 PROPERTIES
  ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;example" TIMEOUT 300 PROCESSORS 2)

# A rank that stalls or dies in the middle of a training step: the others'
# dsz_step ends with the timeout error naming the collective (or mpirun ends
# the job); never a hang.
add_executable(zero_fault ${CMAKE_CURRENT_SOURCE_DIR}/mpi/zero_fault.c)
target_link_libraries(zero_fault PRIVATE dszero MPI::MPI_C)
foreach(case "late|EXPECTED 12: rank 0: .*reduce_scatter" "exit|EXPECTED 12|exited|terminated|aborted|killed"
             "lategroup|EXPECTED rank 0: memory intact")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 mode)
  list(SUBLIST parts 1 -1 rest)
  string(REPLACE ";" "|" regex "${rest}")
  add_test(NAME zero_fault_${mode}_np2
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run_fault.sh ${MPIEXEC_EXECUTABLE} 2
            $<TARGET_FILE:zero_fault> ${mode} 60 "${regex}")
  set_tests_properties(zero_fault_${mode}_np2 PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV};DSZ_COMM_TIMEOUT=10" LABELS "mpi;fault" TIMEOUT 90 PROCESSORS 2)
endforeach()

# ---- moe (owned by src/moe): expert parallelism gives the ep_size-1 results ----
add_executable(moe_parity ${CMAKE_CURRENT_SOURCE_DIR}/mpi/moe_parity.c)
target_link_libraries(moe_parity PRIVATE dszero MPI::MPI_C m)
dsz_mpi_test(moe_parity RANKS 2 4 LABELS mpi moe TIMEOUT 120)
# Gradients reduced in communication_data_type (default: the model dtype),
# with gradient_predivide_factor, at every stage.
add_executable(comm_dtype ${CMAKE_CURRENT_SOURCE_DIR}/mpi/comm_dtype.c)
target_link_libraries(comm_dtype PRIVATE dszero MPI::MPI_C)
dsz_mpi_test(comm_dtype RANKS 2 3 LABELS mpi zero TIMEOUT 120)
# Expert parameters in the engine (DSZ_GROUP_EXPERT): training with ep_size
# 1, 2 (and 4) agrees at every ZeRO stage; checkpoints reshard across ep_size.
add_executable(moe_train ${CMAKE_CURRENT_SOURCE_DIR}/mpi/moe_train.c)
target_link_libraries(moe_train PRIVATE dszero MPI::MPI_C m)
dsz_mpi_test(moe_train RANKS 2 4 LABELS mpi moe TIMEOUT 300)
# ---- end moe ----
# ---- nvme (owned by the NVMe offload work): swapped optimizer states across ranks ----
add_executable(nvme_ranks ${CMAKE_CURRENT_SOURCE_DIR}/mpi/nvme_ranks.c)
target_link_libraries(nvme_ranks PRIVATE dszero MPI::MPI_C)
if(DSZ_AIO_LIBRARY AND DSZ_WITH_AIO)
  dsz_mpi_test(nvme_ranks RANKS 2 3 LABELS mpi nvme TIMEOUT 120)
endif()
# ---- end nvme ----
