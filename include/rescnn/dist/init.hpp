// rescnn/dist/init.hpp — the world a program was launched into.
//
//   auto world = rescnn::dist::init();   // mpirun -np 2 ./train ... -> size() == 2
//
// Under mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE; PMI_SIZE and
// PMIX_SIZE are read too) the MPI group of all launched processes; otherwise
// the one-process group, without initialising MPI. A program launched with
// several processes but built without MPI gets a DistError saying so, not N
// copies of a single-process run.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "rescnn/dist/mpi.hpp"
#include "rescnn/dist/process_group.hpp"

namespace rescnn::dist {

// The world size the launcher announced in the environment, or 0 when no
// launcher did.
inline int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    check<DistError>(*end == '\0' && n >= 1 && n < (1L << 24), "rescnn::dist: ", name, "='", v,
                     "' is not a process count");
    return static_cast<int>(n);
  }
  return 0;
}

// The number of ranks the launcher put on this host (Open MPI's
// OMPI_COMM_WORLD_LOCAL_SIZE), or 1: a program dividing the cores among
// them starts that many threads per rank, not one per core each.
inline int launcher_local_size() {
  const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (v == nullptr || *v == '\0') return 1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n >= 1 && n < (1L << 24) ? static_cast<int>(n) : 1;
}

inline std::shared_ptr<ProcessGroup> init() {
  const int launched = launcher_world_size();
  if (launched <= 1) return std::make_shared<LocalProcessGroup>();
  if constexpr (!built_with_mpi)
    fail<DistError>("rescnn::dist: launched as one of ", launched,
                    " processes, but this program was built without MPI (configure with -DRESCNN_MPI=ON)");
  return make_mpi_group();
}

}  // namespace rescnn::dist
