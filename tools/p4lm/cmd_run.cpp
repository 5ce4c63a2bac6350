// `p4lm run`: the main job. Runs the pipeline stages that exist on the bundled (or given) data and
// writes every artifact under --out, each stage reusing its artifact when it exists (a killed run
// picks up where it stopped; SFT resumes from its last checkpoint):
//   [1] data inventory  [2] CF (ALS) -> cf/cf.safetensors  [3] catalog, profiles, teacher corpus -> data/
//   [4] SFT warm start, both stages -> sft/model.safetensors  [5] pitches for test users -> pitches.jsonl
// Each stage is also its own subcommand (p4lm cf train, p4lm data build, p4lm sft, p4lm pitch).

#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <p4lm/data/datasets.hpp>
#include <p4lm/p4lm.hpp>
#include <p4lm/train/pitch_writer.hpp>
#include <p4lm/train/warm_start.hpp>

#include "p4lm/command.hpp"
#include "p4lm/inventory.hpp"

namespace p4lm::cli {
namespace {
struct RunConfig {
  Param<std::string> data{"", "data folder (default: P4LM_DATA, install prefix, source tree)"};
  Param<std::string> out{"runs/main", "output folder for every artifact of the run"};
  Param<long> seed{1, "seed of every random choice in the run"};
  Param<long> cf_dim{32, "CF embedding width (16, 32 or 64)"};
  Param<long> stage1_steps{60, "SFT stage 1 steps (CF adapters only)"};
  Param<long> stage2_steps{240, "SFT stage 2 steps (everything)"};
  Param<long> batch_size{8, "SFT sequences per step"};
  Param<long> pitch_users{5, "test users that get a sample pitch"};
  Param<bool> progress{true, "show progress on stderr"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::RunConfig, data, out, seed, cf_dim, stage1_steps, stage2_steps, batch_size,
                        pitch_users, progress);

namespace p4lm::cli {
namespace {

// Runs a registered subcommand in this process (the CF and data stages keep their drivers there).
void run_stage(const std::string& name, std::vector<std::string> args) {
  const auto it = commands().find(name);
  if (it == commands().end()) fail<Error>("p4lm run: stage '", name, "' is not built into this program");
  if (const int rc = it->second.run(args); rc != 0)
    fail<Error>("p4lm run: stage '", name, "' failed (exit ", rc, ")");
}

int run_main(std::span<const std::string> args) {
  const auto config = parse_flags<RunConfig>(args);
  const std::filesystem::path out = *config.out;
  const auto root = data_dir(std::filesystem::path(*config.data));
  if (!config.data->empty()) ::setenv("P4LM_DATA", root.c_str(), 1);  // every stage reads this data
  io::write_file_atomically(out / "config.json", to_json(config).dump(2) + "\n");
  const std::string seed = std::to_string(*config.seed), progress = *config.progress ? "true" : "false";

  std::cout << "[1] data inventory\n";
  const auto found = inventory(root);
  for (const auto& [name, value] : found.items()) std::cout << "    " << name << ": " << value.dump() << '\n';
  io::write_file_atomically(out / "inventory.json", found.dump(2) + "\n");

  const auto cf_file = out / "cf" / "cf.safetensors";
  std::cout << "[2] collaborative filtering (ALS)" << std::endl;
  if (std::filesystem::exists(cf_file))
    std::cout << "    reusing " << cf_file.string() << '\n';
  else
    run_stage("cf", {"train", "--out", (out / "cf").string(), "--dim", std::to_string(*config.cf_dim),
                     "--seed", seed, "--progress=" + progress});

  const auto corpus = out / "data";
  std::cout << "[3] catalog, profiles and the teacher's pitch corpus" << std::endl;
  if (std::filesystem::exists(corpus / "stats.json"))
    std::cout << "    reusing " << corpus.string() << '\n';
  else
    run_stage("data", {"build", "--cf", cf_file.string(), "--out", corpus.string(), "--seed", seed,
                       "--progress=" + progress});

  std::cout << "[4] SFT warm start: stage 1 CF adapters (transformer frozen), stage 2 everything"
            << std::endl;
  train::WarmStartOptions sft;
  sft.data = corpus;
  sft.cf = cf_file;
  sft.out = out / "sft";
  sft.max_test = 300;  // bounds the final evaluation's time (the main job has a 10-minute budget)
  sft.sft.seed = static_cast<std::uint64_t>(*config.seed);
  sft.sft.stage1_steps = static_cast<std::size_t>(std::max(0L, *config.stage1_steps));
  sft.sft.stage2_steps = static_cast<std::size_t>(std::max(0L, *config.stage2_steps));
  sft.sft.batch_size = static_cast<std::size_t>(std::max(1L, *config.batch_size));
  sft.sft.stage1_lr = 3e-3;
  sft.sft.stage2_lr = 2e-3;
  sft.sft.stage2_adapter_lr = 1e-2;  // as p4lm sft: the young adapters learn faster than the LM
  // The weight p4lm sft settles at after its heavy start: the user-dependent sentence weighs more.
  sft.sft.link_weight = 5;
  sft.sft.eval_every = 50;
  sft.sft.eval_examples = 128;
  sft.sft.checkpoint_every = 50;
  sft.sft.progress = *config.progress;
  const auto r = train::run_warm_start(sft);
  std::cout << "    " << (r.reused ? "reused: " : "") << r.steps
            << " steps; held-out loss per pitch token: test " << r.test_loss
            << ", with shuffled user embeddings " << r.test_loss_shuffled_users
            << "; link sentence only: " << r.test_link_loss << " vs " << r.test_link_loss_shuffled_users
            << '\n';

  std::cout << "[5] pitches for test users" << std::endl;
  const train::PitchSources sources(corpus);
  const auto writer = train::PitchWriter::load(sft.out / "model.safetensors", cf_file);
  const auto heldout = data::read_records<data::HeldoutPair>(corpus / "heldout" / "test.jsonl");
  std::set<std::int64_t> users;
  Rng rng(static_cast<std::uint64_t>(*config.seed), 0x717c4ULL);
  io::write_jsonl_with(out / "pitches.jsonl", [&](auto&& emit) {
    for (const auto& h : heldout) {
      if (users.size() >= static_cast<std::size_t>(*config.pitch_users)) break;
      if (!users.insert(h.user_id).second) continue;
      const auto request = sources.request(h.user_id, h.movie_id);
      const auto pitch = writer.write(request, rng);
      std::cout << "    user " << h.user_id << " (" << request.profile << ")\n      movie " << h.movie_id
                << " " << request.title << ": " << pitch << '\n';
      emit(nlohmann::json{{"user_id", h.user_id},
                          {"movie_id", h.movie_id},
                          {"profile", request.profile},
                          {"prompt", writer.prompt_text(request)},
                          {"pitch", pitch}});
    }
  });
  std::cout << "artifacts in " << out.string() << '\n';
  return 0;
}

const Registration run_registration{"run", Command{"the main job: every pipeline stage on the bundled data",
                                                   flags_help<RunConfig>(), run_main}};

}  // namespace
}  // namespace p4lm::cli
