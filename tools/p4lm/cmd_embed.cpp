// `p4lm embed`: sentence embeddings with a sentence-transformers BERT model (all-MiniLM-L6-v2), one JSON
// array of floats per text, as sentence-transformers' encode() returns them (mean pooling, unit length).
//
//   p4lm embed --text "A heist movie with a twist"                 -> [0.0123,-0.0456,...]  (384 values)
//   p4lm embed --model models/all-minilm-l6-v2 --jsonl texts.jsonl  -> one array per {"text": ...} line

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <p4lm/core/config.hpp>
#include <p4lm/core/error.hpp>
#include <p4lm/core/model_cache.hpp>
#include <p4lm/io/jsonl.hpp>
#include <p4lm/model/bert_encoder.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

struct EmbedConfig {
  Param<std::string> model{"minilm",
                           "minilm (all-MiniLM-L6-v2 from the model cache) or a sentence-transformers folder "
                           "(config.json, model.safetensors, tokenizer.json)"};
  Param<std::string> text{"", "text to embed (one JSON array printed)"};
  Param<std::string> jsonl{"", "JSONL file of {\"text\": ...} objects (one JSON array per line)"};
  Param<int> batch{32, "texts per forward pass", between(1, 4096)};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::EmbedConfig, model, text, jsonl, batch);

namespace p4lm::cli {
namespace {

std::filesystem::path model_dir(const std::string& spec) {
  if (spec != "minilm") return spec;
  const auto m = cached_models()[1];
  if (!m.present)
    fail<UsageError>("minilm: all-MiniLM-L6-v2 is not in the model cache ", model_cache_dir().string(),
                     " (run scripts/fetch-models.sh, or set P4LM_MODELS, or give --model <folder>)");
  return m.path;
}

int run_embed(std::span<const std::string> args) {
  const auto config = parse_flags<EmbedConfig>(args);
  if (config.text->empty() == config.jsonl->empty())
    fail<UsageError>("give exactly one of --text and --jsonl");
  const auto dir = model_dir(*config.model);
  if (!std::filesystem::is_directory(dir))
    fail<IoError>(dir.string(), ": not a folder (expected a sentence-transformers model)");
  SentenceEncoder encoder(dir);
  std::vector<std::string> texts;
  if (!config.text->empty()) {
    texts.push_back(*config.text);
  } else {
    io::for_each_jsonl(std::filesystem::path(*config.jsonl), [&](const nlohmann::json& j, std::size_t) {
      texts.push_back(j.at("text").get<std::string>());
    });
  }
  const auto emb = encoder.embed(texts, static_cast<std::size_t>(*config.batch));
  const std::size_t d = encoder.dim();
  std::cout.precision(9);  // float's max_digits10: each value reads back exactly
  for (std::size_t i = 0; i < texts.size(); ++i) {
    std::cout << '[';
    for (std::size_t c = 0; c < d; ++c) std::cout << (c ? "," : "") << emb[i * d + c];
    std::cout << "]\n";
  }
  return 0;
}

const Registration embed_registration{
    "embed",
    Command{"print sentence embeddings (all-MiniLM-L6-v2 or another sentence-transformers BERT) as JSON "
            "arrays",
            flags_help<EmbedConfig>(), run_embed}};

}  // namespace
}  // namespace p4lm::cli
