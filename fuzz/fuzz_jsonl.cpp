// io::for_each_jsonl and every dataset record type (data/datasets.hpp) on arbitrary lines.
#include <sstream>

#include <p4lm/data/datasets.hpp>
#include <p4lm/io/jsonl.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(p4lm_fuzz::as_text(data, size)));
  p4lm_fuzz::expect_clean([&] {
    p4lm::io::for_each_jsonl(in, "fuzz.jsonl", [](const nlohmann::json& j, std::size_t) {
      p4lm_fuzz::expect_clean([&] { (void)j.get<p4lm::data::SftExample>(); });
      p4lm_fuzz::expect_clean([&] { (void)j.get<p4lm::data::NliPair>(); });
      p4lm_fuzz::expect_clean([&] { (void)j.get<p4lm::data::PreferencePair>(); });
      p4lm_fuzz::expect_clean([&] { (void)j.get<p4lm::data::RelevanceExample>(); });
      p4lm_fuzz::expect_clean([&] { (void)j.get<p4lm::data::HeldoutPair>(); });
      (void)p4lm::io::jsonl_line(j);  // what was read can be written back
    });
  });
  // The same bytes through read_records, which turns every failure into a ParseError with the line.
  const auto path = p4lm_fuzz::write("records.jsonl", p4lm_fuzz::as_text(data, size));
  p4lm_fuzz::expect_clean([&] { (void)p4lm::data::read_records<p4lm::data::SftExample>(path); });
  p4lm_fuzz::expect_clean([&] { (void)p4lm::data::read_records<p4lm::data::PreferencePair>(path); });
  return 0;
}
