# python_tests.cmake -- the Python binding's tests (bindings/python), included
# from tests/CMakeLists.txt in builds without sanitizers (an ASan libdszero
# cannot be loaded into an uninstrumented python without LD_PRELOAD).
# pytest runs under Debian's /usr/bin/python3, the one with torch and numpy,
# against this build's library (DSZERO_LIBRARY).
set(DSZ_PY /usr/bin/python3)
set(DSZ_PY_DIR ${CMAKE_CURRENT_SOURCE_DIR}/python)
set(DSZ_PY_ENV
  DSZERO_LIBRARY=$<TARGET_FILE:dszero>
  PYTHONDONTWRITEBYTECODE=1
  OMP_NUM_THREADS=1)   # CTest runs two tests at once on 2 cores: one torch thread each
set(DSZ_PYTEST ${DSZ_PY} -m pytest -q -p no:cacheprovider)

# API, errors, NumPy-only, header parity, hooks; training parity and precision; stage 3.
add_test(NAME python_api
  COMMAND ${DSZ_PYTEST} test_errors.py test_numpy.py test_header_parity.py test_hooks.py test_pipe.py
  WORKING_DIRECTORY ${DSZ_PY_DIR})
add_test(NAME python_train
  COMMAND ${DSZ_PYTEST} test_parity.py test_precision.py test_checkpoint.py
  WORKING_DIRECTORY ${DSZ_PY_DIR})
add_test(NAME python_zero3
  COMMAND ${DSZ_PYTEST} test_zero3.py
  WORKING_DIRECTORY ${DSZ_PY_DIR})
# dszero.moe.MoE against a float64 restatement of DeepSpeed's layer.
add_test(NAME python_moe
  COMMAND ${DSZ_PYTEST} test_moe.py
  WORKING_DIRECTORY ${DSZ_PY_DIR})
set_tests_properties(python_api python_train python_zero3 python_moe PROPERTIES
  ENVIRONMENT "${DSZ_PY_ENV}" LABELS "python" TIMEOUT 600)

# `pip install ./bindings/python` offline into a throwaway venv, then import and train.
add_test(NAME python_pip_install
  COMMAND sh ${DSZ_PY_DIR}/check_pip_install.sh ${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/python_pip_install $<TARGET_FILE:dszero>)
set_tests_properties(python_pip_install PROPERTIES LABELS "python;build" TIMEOUT 300
  PASS_REGULAR_EXPRESSION "installed dszero .*: OK")

# The example trains (its exit status says whether the loss fell) and saves its curve.
add_test(NAME example_train_gpt_py
  COMMAND ${DSZ_PY} ${PROJECT_SOURCE_DIR}/examples/python/train_gpt.py --steps 40 --block 32
          --out ${CMAKE_CURRENT_BINARY_DIR}/example_train_gpt_py)
set_tests_properties(example_train_gpt_py PROPERTIES
  ENVIRONMENT "${DSZ_PY_ENV}" LABELS "python;example" TIMEOUT 600)

if(TARGET MPI::MPI_C AND MPIEXEC_EXECUTABLE)
  # Every ZeRO stage across two ranks; one thread per rank for torch (2 cores).
  set(DSZ_PY_MPI_ENV ${DSZ_MPI_TEST_ENV} DSZERO_LIBRARY=$<TARGET_FILE:dszero> PYTHONDONTWRITEBYTECODE=1
      OMP_NUM_THREADS=1 DSZ_TEST_TMPDIR=${CMAKE_CURRENT_BINARY_DIR})
  add_test(NAME python_mpi_np2
    COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none ${DSZ_PYTEST} mpi_stages.py
    WORKING_DIRECTORY ${DSZ_PY_DIR})
  add_test(NAME example_train_gpt_py_zero3_np2
    COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none ${DSZ_PY} ${PROJECT_SOURCE_DIR}/examples/python/train_gpt.py
            --config ${PROJECT_SOURCE_DIR}/examples/configs/gpt_bf16_zero3.json --steps 40 --block 32
            --out ${CMAKE_CURRENT_BINARY_DIR}/example_train_gpt_py_zero3_np2)
  set_tests_properties(python_mpi_np2 example_train_gpt_py_zero3_np2 PROPERTIES
    ENVIRONMENT "${DSZ_PY_MPI_ENV}" LABELS "python;mpi" TIMEOUT 600 PROCESSORS 2)

  # dszero.moe: ep_size 2 against ep_size 1 on every rank's tokens; ep_size 1 as data parallelism;
  # an MoE model trained through dszero.initialize with ep_size 2 and 1 at ZeRO stages 1-3.
  add_test(NAME python_moe_np2
    COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none ${DSZ_PYTEST} mpi_moe.py
    WORKING_DIRECTORY ${DSZ_PY_DIR})
  add_test(NAME python_moe_train_np2
    COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none ${DSZ_PYTEST} mpi_moe_train.py
    WORKING_DIRECTORY ${DSZ_PY_DIR})
  set_tests_properties(python_moe_np2 python_moe_train_np2 PROPERTIES
    ENVIRONMENT "${DSZ_PY_MPI_ENV}" LABELS "python;mpi;moe" TIMEOUT 300 PROCESSORS 2)

  # dszero.pipe: pp=2 (np 2) and pp=2 x dp=2 (np 4) against one process; failing callbacks.
  foreach(np 2 4)
    add_test(NAME python_pipe_np${np}
      COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none ${DSZ_PYTEST} mpi_pipe.py
      WORKING_DIRECTORY ${DSZ_PY_DIR})
    set_tests_properties(python_pipe_np${np} PROPERTIES
      ENVIRONMENT "${DSZ_PY_MPI_ENV}" LABELS "python;mpi;pipe" TIMEOUT 300 PROCESSORS ${np})
  endforeach()
endif()
