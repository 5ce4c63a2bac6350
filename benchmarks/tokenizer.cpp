// Tokenizer throughput: GPT-2 BPE and the llama2.c tokenizer on real text (the 11,390 GPT-2 test
// vector texts, the TMDB overviews of MovieLens ml-latest-small). Prints a markdown table.
//
//   bench_tokenizer [repeats=5]
//
// "first pass" starts from a freshly loaded tokenizer, so GPT-2 runs BPE for every distinct word;
// "warm" is the best of `repeats` further passes, where GPT-2's per-word cache answers most words.
// Single-threaded.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/data_dir.hpp>
#include <p4lm/io/csv.hpp>
#include <p4lm/io/jsonl.hpp>
#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>

namespace {

// Thread CPU time, not wall time: the 2-core build machines are shared, and CPU time stays close to
// the quiet-machine figure when other jobs run (wall time does not).
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
};

double seconds_since(double start) {
  return Clock::now() - start;
}

struct Corpus {
  std::string name;
  std::vector<std::string> texts;
  std::size_t bytes = 0;
};

Corpus vector_texts() {
  Corpus c{"GPT-2 test vectors (11,390 titles/tags/edge cases)", {}, 0};
  p4lm::io::for_each_jsonl(p4lm::data_path("gpt2-tokenizer/test_vectors_generated.jsonl"),
                           [&](const nlohmann::json& j, std::size_t) { c.texts.push_back(j.at("text")); });
  for (const auto& t : c.texts) c.bytes += t.size();
  return c;
}

Corpus overviews() {
  Corpus c{"TMDB overviews (ml-latest-small)", {}, 0};
  p4lm::io::CsvReader csv(p4lm::data_path("plots/ml-latest-small_overviews.csv"));
  const auto column = csv.column("overview");
  p4lm::io::CsvRow row;
  while (csv.next(row)) c.texts.emplace_back(row[column]);
  for (const auto& t : c.texts) c.bytes += t.size();
  return c;
}

template <class Tok>
std::size_t encode_all(const Tok& tok, const Corpus& corpus) {
  std::size_t tokens = 0;
  for (const auto& t : corpus.texts) tokens += tok.encode(t).size();
  return tokens;
}

template <class Load>
void measure(const char* tokenizer, Load load, const Corpus& corpus, int repeats) {
  const auto tok = load();
  auto start = Clock::now();
  const std::size_t tokens = encode_all(tok, corpus);
  const double first = seconds_since(start);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    start = Clock::now();
    if (encode_all(tok, corpus) != tokens) std::abort();  // deterministic: same count every pass
    best = std::min(best, seconds_since(start));
  }
  const double mb = static_cast<double>(corpus.bytes) / 1e6;
  std::printf("| %s | %s | %zu | %.2f | %zu | %.1f | %.1f | %.2f |\n", tokenizer, corpus.name.c_str(),
              corpus.texts.size(), mb, tokens, mb / first, mb / best,
              static_cast<double>(tokens) / best / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  if (std::ifstream load("/proc/loadavg"); load) {
    std::string avg;
    std::getline(load, avg);
    std::printf("load average: %s (times below are thread CPU time)\n", avg.c_str());
  }
  auto start = Clock::now();
  const auto gpt2_once = p4lm::text::Gpt2Tokenizer::bundled();
  std::printf("GPT-2 tokenizer load (encoder.json + vocab.bpe): %.3f s\n", seconds_since(start));
  start = Clock::now();
  const auto llama_once = p4lm::text::Llama2cTokenizer::bundled();
  std::printf("llama2.c tok512.bin load: %.4f s\n\n", seconds_since(start));

  const Corpus corpora[] = {vector_texts(), overviews()};
  std::printf(
      "| tokenizer | corpus | texts | MB | tokens | first pass MB/s | warm MB/s | warm Mtokens/s |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& corpus : corpora) {
    measure(
        "GPT-2 BPE", [] { return p4lm::text::Gpt2Tokenizer::bundled(); }, corpus, repeats);
    measure(
        "llama2.c tok512", [] { return p4lm::text::Llama2cTokenizer::bundled(); }, corpus, repeats);
  }

  // Decoding, for completeness: GPT-2 ids of the overviews back to text.
  const auto ids = gpt2_once.encode(corpora[1].texts.front());
  std::vector<std::vector<std::int32_t>> all;
  for (const auto& t : corpora[1].texts) all.push_back(gpt2_once.encode(t));
  double best = 1e30;
  std::size_t bytes = 0;
  for (int r = 0; r < repeats; ++r) {
    start = Clock::now();
    bytes = 0;
    for (const auto& v : all) bytes += gpt2_once.decode(v).size();
    best = std::min(best, seconds_since(start));
  }
  std::printf("\nGPT-2 decode, overviews: %.1f MB/s (%zu bytes)\n", static_cast<double>(bytes) / 1e6 / best,
              bytes);
  (void)ids;
  (void)llama_once;
  return 0;
}
