#pragma once
// MPI's lifetime in a program. `Environment mpi(argc, argv)` at the top of main initialises MPI when
// the process was started by an MPI launcher (mpirun/mpiexec of Open MPI or MPICH, srun: they set
// OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK) or when P4LM_MPI=1, and finalises it when main returns;
// dist::world() is then MPI_COMM_WORLD. A program started alone never touches MPI (no singleton
// start-up), and P4LM_MPI=0 keeps MPI off even under a launcher. Without P4LM_WITH_MPI it does nothing.
//
//   int main(int argc, char** argv) {
//     p4lm::dist::Environment mpi(argc, argv);
//     try { ... } catch (const std::exception& e) { std::cerr << e.what(); mpi.abort(1); }
//   }
//
// Threads: MPI is asked for MPI_THREAD_FUNNELED: OpenMP/OpenBLAS threads compute, only the thread
// that called the constructor calls MPI.

#include <cstdlib>
#include <string_view>

#if defined(P4LM_WITH_MPI)
#include <mpi.h>
#endif

#include "p4lm/core/error.hpp"
#include "p4lm/dist/communicator.hpp"

namespace p4lm::dist {

class Environment {
 public:
  Environment(int& argc, char**& argv) { init(&argc, &argv); }
  // Without main's arguments (MPI does not need them): a test program's static Environment.
  Environment() { init(nullptr, nullptr); }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment() {
#if defined(P4LM_WITH_MPI)
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (owner_ && !finalised) MPI_Finalize();
#endif
  }

  // Whether this Environment initialised MPI (and will finalise it).
  bool active() const noexcept {
    return owner_;
  }

  // Ends the program with `code`. With several ranks it is MPI_Abort: one rank's error must not
  // leave the others waiting forever in a collective.
  [[noreturn]] void abort(int code) {
#if defined(P4LM_WITH_MPI)
    if (owner_ && world().distributed()) MPI_Abort(MPI_COMM_WORLD, code);
    if (owner_) {
      int finalised = 0;
      MPI_Finalized(&finalised);
      if (!finalised) MPI_Finalize();
    }
#endif
    std::exit(code);
  }

  // P4LM_MPI=1/0 forces MPI on/off; otherwise on exactly when an MPI launcher started the process.
  static bool wanted() {
    if (const char* v = std::getenv("P4LM_MPI"); v && *v) return std::string_view(v) != "0";
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
      if (std::getenv(var)) return true;
    return false;
  }

 private:
  void init([[maybe_unused]] int* argc, [[maybe_unused]] char*** argv) {
#if defined(P4LM_WITH_MPI)
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (initialised || !wanted()) return;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      fail<Error>("MPI_Init_thread failed");
    owner_ = true;
#endif
  }

  bool owner_ = false;
};

}  // namespace p4lm::dist
