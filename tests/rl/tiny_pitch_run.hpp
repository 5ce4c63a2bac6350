#pragma once
// A tiny warm-started pitch run on disk: what `p4lm data build`, `p4lm cf train` and `p4lm sft` leave
// behind, in miniature (a random 1-layer Llama with tok512's vocabulary, a random CF adapter, 3 users
// x 4 movies). Users 10 and 11 are train users, 12 a test user with held-out pairs.

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/train/pitch_model.hpp"

namespace p4lm_test {

using namespace p4lm;

struct Folder {
  std::filesystem::path path;
  explicit Folder(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("p4lm_test_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~Folder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

constexpr int kDim = 16;
using Adapter = CFAdapter<kDim, 1, float>;

// A tiny Llama with tok512's vocabulary, a random adapter, 4 users (10 and 11 train, 12 test, 13
// validation) x 4 movies of CF embeddings, the catalog, profiles and held-out pairs: the files
// `p4lm sft` and `p4lm data build` leave behind.
struct TinyRun {
  Folder dir{"pitch_policy"};
  LlamaLM<float> lm;
  Adapter adapter{16};
  cf::Embeddings<kDim> cf{4, 4};

  static ModelConfig config() {
    ModelConfig c;
    c.arch = "llama";
    c.vocab_size = 512;
    c.d_model = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.d_ff = 32;
    c.max_seq = 128;
    c.tied_head = true;
    return c;
  }

  TinyRun() : lm(config()) {
    Rng rng(7);
    lm.init_random(rng, 0.1);
    adapter.init_random(rng, 0.1);
    // The validation user's row is drawn last, so the others keep the values they had before it.
    for (std::size_t k = 0; k < 3 * kDim; ++k) cf.users.data()[k] = float(rng.normal());
    for (std::size_t k = 0; k < cf.items.size(); ++k) cf.items.data()[k] = float(rng.normal());
    for (std::size_t k = 3 * kDim; k < cf.users.size(); ++k) cf.users.data()[k] = float(rng.normal());
    cf.user_ids = {10, 11, 12, 13};
    cf.item_ids = {100, 101, 102, 103};
    cf::save_embeddings(cf, dir.path / "cf.safetensors");
    const nlohmann::json info{{"conditioning", "cf"},
                              {"cf_dim", kDim},
                              {"adapter_tokens", 1},
                              {"prefix", "bos_then_soft_tokens"},
                              {"adapter_hidden", 0},
                              {"adapter_output", "vectors"},
                              {"tokenizer", ""},
                              {"base", "scratch"},
                              {"cf", (dir.path / "cf.safetensors").string()},
                              {"max_prompt_tokens", 48},
                              {"max_pitch_tokens", 64},
                              {"first_sentence_only", true},
                              {"marker", "Pitch:"}};
    train::PitchModel<LlamaLM<float>, Adapter> bundle(lm, &adapter);
    save_checkpoint(dir.path / "model.safetensors", bundle, static_cast<AdamW<float>*>(nullptr),
                    {{"pitch_model", info.dump()}});
    std::ofstream catalog(dir.path / "catalog.jsonl"), profiles(dir.path / "profiles.jsonl");
    const char* titles[] = {"Heat", "Alien", "Up", "Fargo"};
    for (int m = 0; m < 4; ++m)
      catalog << nlohmann::json{{"movie_id", 100 + m},
                                {"title", titles[m]},
                                {"year", 1990 + m},
                                {"genres", {"Drama", "Crime"}},
                                {"overview", "A story about a thing. And another one."}}
                     .dump()
              << '\n';
    for (int u = 0; u < 4; ++u)
      profiles << nlohmann::json{{"user_id", 10 + u},
                                 {"text", "likes films"},
                                 {"split", u < 2    ? "train"
                                           : u == 2 ? "test"
                                                    : "val"}}
                      .dump()
               << '\n';
    std::filesystem::create_directories(dir.path / "heldout");
    for (const auto& [split, user] : {std::pair{"test", 12}, std::pair{"val", 13}}) {
      std::ofstream heldout(dir.path / "heldout" / (std::string(split) + ".jsonl"));
      for (int m : {1, 3})
        heldout << nlohmann::json{{"user_id", user},        {"movie_id", 100 + m},     {"rating", 4.5},
                                  {"title", titles[m]},     {"year", 1990 + m},        {"genres", {"Drama"}},
                                  {"overview", "A story."}, {"profile", "likes films"}}
                       .dump()
                << '\n';
    }
  }
};

}  // namespace p4lm_test
