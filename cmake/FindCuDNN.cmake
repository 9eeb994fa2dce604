# Finds cuDNN 9 and defines the imported target rescnn::cudnn.
#
# cuDNN is installed in many ways: beside the CUDA toolkit (/usr/local/cuda),
# as Debian/Ubuntu packages (/usr), or as pip's nvidia-cudnn-cu12/-cu13 wheel
# inside a Python environment (<site-packages>/nvidia/cudnn/{include,lib}).
# A machine may have several, so the header and the library must come from
# ONE installation: a cudnn.h of one version with a libcudnn of another
# compiles and then fails at run time. The candidates are therefore tried as
# whole roots, in this order, and the first root that has both wins:
#
#   1. CUDNN_ROOT (a CMake variable, or the environment variable): when it is
#      given, it is the only candidate, and an incomplete one is an error;
#   2. the CUDA toolkit's own directories (CUDAToolkit_* from FindCUDAToolkit);
#   3. the nvidia.cudnn package of the Python interpreter Python3_EXECUTABLE
#      (or the first python3 on PATH), as `import nvidia.cudnn` finds it;
#   4. the system prefixes (/usr, /usr/local).
#
# Within a root the library is looked up directory by directory
# (NAMES_PER_DIR), so that an unversioned libcudnn.so elsewhere on the search
# path can never win over the root's libcudnn.so.9. Setting both
# RESCNN_CUDNN_INCLUDE_DIR and RESCNN_CUDNN_LIBRARY skips the search.
#
# The chosen root, version, header directory and library are printed.
if(TARGET rescnn::cudnn)
  return()
endif()

# rescnn_cudnn_probe_root(ROOT INC_VAR LIB_VAR): the header directory and the
# library under ROOT, or <var>-NOTFOUND.
function(rescnn_cudnn_probe_root root inc_var lib_var)
  # find_* skips its search when the variable already holds a result, and
  # the caller's variables are visible here: start from nothing, so that one
  # root's header never stands in for another's.
  unset(_inc)
  unset(_lib)
  # Debian's and Ubuntu's packages put both under the multiarch directory
  # (/usr/include/x86_64-linux-gnu/cudnn.h, /usr/lib/x86_64-linux-gnu/).
  set(_arch_inc)
  set(_arch_lib)
  if(CMAKE_LIBRARY_ARCHITECTURE)
    set(_arch_inc include/${CMAKE_LIBRARY_ARCHITECTURE})
    set(_arch_lib lib/${CMAKE_LIBRARY_ARCHITECTURE})
  endif()
  find_path(_inc cudnn.h PATHS "${root}" PATH_SUFFIXES include ${_arch_inc} NO_DEFAULT_PATH NO_CACHE)
  # libcudnn.so.9 by its full name: pip's wheels ship no unversioned link.
  # (cuDNN 8's name too, so that an old installation is reported as such.)
  find_library(_lib NAMES cudnn libcudnn.so.9 libcudnn.so.8 NAMES_PER_DIR
    PATHS "${root}" PATH_SUFFIXES lib64 lib ${_arch_lib} NO_DEFAULT_PATH NO_CACHE)
  if(_inc)
    get_filename_component(_inc "${_inc}" ABSOLUTE)  # no trailing slash
  endif()
  set(${inc_var} "${_inc}" PARENT_SCOPE)
  set(${lib_var} "${_lib}" PARENT_SCOPE)
endfunction()

# rescnn_cudnn_header_version(INCLUDE_DIR OUT_VAR): "MAJOR.MINOR.PATCH" from
# cudnn_version.h (cuDNN 8 and later), or "" when it cannot be read.
function(rescnn_cudnn_header_version inc out_var)
  set(_version "")
  if(EXISTS "${inc}/cudnn_version.h")
    file(STRINGS "${inc}/cudnn_version.h" _defines REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
    foreach(_part MAJOR MINOR PATCHLEVEL)
      string(REGEX MATCH "CUDNN_${_part} +([0-9]+)" _m "${_defines}")
      set(_${_part} "${CMAKE_MATCH_1}")
    endforeach()
    if(NOT _MAJOR STREQUAL "")
      set(_version "${_MAJOR}.${_MINOR}.${_PATCHLEVEL}")
    endif()
  endif()
  set(${out_var} "${_version}" PARENT_SCOPE)
endfunction()

# A CUDNN_ROOT other than the root an earlier configure found asks for a new
# search (the cached results would otherwise win).
set(_rescnn_cudnn_asked "${CUDNN_ROOT}")
if(NOT _rescnn_cudnn_asked AND DEFINED ENV{CUDNN_ROOT})
  set(_rescnn_cudnn_asked "$ENV{CUDNN_ROOT}")
endif()
if(_rescnn_cudnn_asked AND RESCNN_CUDNN_FOUND_ROOT AND NOT _rescnn_cudnn_asked STREQUAL RESCNN_CUDNN_FOUND_ROOT)
  unset(RESCNN_CUDNN_INCLUDE_DIR CACHE)
  unset(RESCNN_CUDNN_LIBRARY CACHE)
endif()

if(RESCNN_CUDNN_INCLUDE_DIR AND RESCNN_CUDNN_LIBRARY)
  if(RESCNN_CUDNN_FOUND_ROOT)
    set(_rescnn_cudnn_root "${RESCNN_CUDNN_FOUND_ROOT} (found by an earlier configure)")
  else()
    set(_rescnn_cudnn_root "(RESCNN_CUDNN_INCLUDE_DIR and RESCNN_CUDNN_LIBRARY as given)")
  endif()
else()
  set(_rescnn_cudnn_explicit_root "")
  if(CUDNN_ROOT)
    set(_rescnn_cudnn_explicit_root "${CUDNN_ROOT}")
  elseif(DEFINED ENV{CUDNN_ROOT} AND NOT "$ENV{CUDNN_ROOT}" STREQUAL "")
    set(_rescnn_cudnn_explicit_root "$ENV{CUDNN_ROOT}")
  endif()

  set(_rescnn_cudnn_roots)
  if(_rescnn_cudnn_explicit_root)
    list(APPEND _rescnn_cudnn_roots "${_rescnn_cudnn_explicit_root}")
  else()
    foreach(_dir IN ITEMS "${CUDAToolkit_TARGET_DIR}" "${CUDAToolkit_LIBRARY_ROOT}")
      if(_dir)
        list(APPEND _rescnn_cudnn_roots "${_dir}")
      endif()
    endforeach()
    # The Python wheel: nvidia is a namespace package, so its __path__ (not
    # __file__, which may be None) names the directory.
    if(Python3_EXECUTABLE)
      set(_rescnn_python "${Python3_EXECUTABLE}")
    else()
      unset(_rescnn_python)
      find_program(_rescnn_python python3 NO_CACHE)
    endif()
    if(_rescnn_python)
      execute_process(
        COMMAND "${_rescnn_python}" -c "import nvidia.cudnn as m; print(list(m.__path__)[0])"
        OUTPUT_VARIABLE _rescnn_cudnn_wheel OUTPUT_STRIP_TRAILING_WHITESPACE
        ERROR_QUIET RESULT_VARIABLE _rescnn_python_rc)
      if(_rescnn_python_rc EQUAL 0 AND IS_DIRECTORY "${_rescnn_cudnn_wheel}")
        list(APPEND _rescnn_cudnn_roots "${_rescnn_cudnn_wheel}")
      endif()
    endif()
    if(NOT _RESCNN_CUDNN_NO_SYSTEM_PATHS)  # set by tests/cmake only
      list(APPEND _rescnn_cudnn_roots /usr /usr/local)
    endif()
  endif()

  set(_rescnn_cudnn_tried "")
  foreach(_root IN LISTS _rescnn_cudnn_roots)
    rescnn_cudnn_probe_root("${_root}" _inc _lib)
    if(_inc AND _lib)
      set(RESCNN_CUDNN_INCLUDE_DIR "${_inc}" CACHE PATH "Directory holding cudnn.h" FORCE)
      set(RESCNN_CUDNN_LIBRARY "${_lib}" CACHE FILEPATH "libcudnn, from the same installation as cudnn.h" FORCE)
      set(_rescnn_cudnn_root "${_root}")
      set(RESCNN_CUDNN_FOUND_ROOT "${_root}" CACHE INTERNAL "The installation RESCNN_CUDNN_* came from")
      break()
    endif()
    set(_found "")
    if(_inc)
      string(APPEND _found "cudnn.h in ${_inc}, ")
    endif()
    if(_lib)
      string(APPEND _found "${_lib}, ")
    endif()
    if(_found STREQUAL "")
      set(_found "neither cudnn.h nor libcudnn")
    else()
      string(APPEND _found "but not both")
    endif()
    string(APPEND _rescnn_cudnn_tried "\n  ${_root}: ${_found}")
  endforeach()

  if(NOT _rescnn_cudnn_root)
    if(_rescnn_cudnn_explicit_root)
      message(FATAL_ERROR "rescnn: CUDNN_ROOT='${_rescnn_cudnn_explicit_root}' does not hold cuDNN: expected "
                          "include/cudnn.h and lib/libcudnn.so.9 (or lib64/) under it.${_rescnn_cudnn_tried}")
    endif()
    message(FATAL_ERROR "rescnn: cuDNN not found. Looked for include/cudnn.h and libcudnn in one root, in this order:"
                        "${_rescnn_cudnn_tried}\nSet CUDNN_ROOT to the directory that holds include/cudnn.h and "
                        "lib/libcudnn.so.9 (for pip's wheel: python3 -c 'import nvidia.cudnn as m; "
                        "print(m.__path__[0])').")
  endif()
endif()

rescnn_cudnn_header_version("${RESCNN_CUDNN_INCLUDE_DIR}" RESCNN_CUDNN_VERSION)
if(NOT RESCNN_CUDNN_VERSION MATCHES "^9\\.")
  message(FATAL_ERROR "rescnn: needs cuDNN 9, but ${RESCNN_CUDNN_INCLUDE_DIR}/cudnn_version.h says "
                      "'${RESCNN_CUDNN_VERSION}' (root ${_rescnn_cudnn_root})")
endif()
# The library's major version, from its real file name (libcudnn.so.9.x.y),
# must be the header's.
get_filename_component(_rescnn_cudnn_real "${RESCNN_CUDNN_LIBRARY}" REALPATH)
if(_rescnn_cudnn_real MATCHES "libcudnn\\.so\\.([0-9]+)" AND NOT CMAKE_MATCH_1 STREQUAL "9")
  message(FATAL_ERROR "rescnn: cudnn.h in ${RESCNN_CUDNN_INCLUDE_DIR} is version ${RESCNN_CUDNN_VERSION}, but "
                      "${RESCNN_CUDNN_LIBRARY} is ${_rescnn_cudnn_real}")
endif()

# An imported target: an export that links it names it as it is, and the
# installed package config recreates it with this file.
add_library(rescnn::cudnn INTERFACE IMPORTED)
set_target_properties(rescnn::cudnn PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${RESCNN_CUDNN_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${RESCNN_CUDNN_LIBRARY}")
message(STATUS "rescnn: cuDNN ${RESCNN_CUDNN_VERSION} from ${_rescnn_cudnn_root}: "
               "header ${RESCNN_CUDNN_INCLUDE_DIR}/cudnn.h, library ${RESCNN_CUDNN_LIBRARY}")
