// A downstream program: includes the umbrella header, uses the library and its bundled data.
#include <iostream>

#include <p4lm/p4lm.hpp>

int main() {
  const auto data = p4lm::data_path("movielens/ml-latest-small/movies.csv");
  std::cout << "p4lm " << p4lm::version_string << " data: " << data.parent_path().string() << '\n';
  return 0;
}
