// cf::load_movielens with a fixed movies.csv and arbitrary ratings.csv bytes: the schema checks
// (half-star scale, duplicates, integer ids, header only) must answer every input with a ParseError.
#include <p4lm/cf/movielens.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto movies = p4lm_fuzz::write("movies.csv",
                                       "movieId,title,genres\n1,A (2000),Drama\n2,B (2001),Comedy|Drama\n"
                                       "3,\"C, The (2002)\",(no genres listed)\n");
  p4lm_fuzz::write("ratings.csv", p4lm_fuzz::as_text(data, size));
  p4lm_fuzz::expect_clean([&] {
    const auto ml = p4lm::cf::load_movielens(movies.parent_path(), {.tags = false, .genome = false});
    ml.ratings.check();
  });
  return 0;
}
