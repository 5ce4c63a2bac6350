// `p4lm judge`: the gold judge (eval/gold_judge.hpp), deterministic and never trained on.
//   p4lm judge --data runs/data                        validation table on the test users' teacher pairs
//   p4lm judge --data runs/data --pitches s.jsonl      score a pitch file: s.gold.jsonl with `gold` fields
// Its scores are for reports only: never feed them to training, model selection or early stopping.

#include <filesystem>
#include <iomanip>
#include <iostream>

#include <p4lm/eval/gold_judge.hpp>
#include <p4lm/eval/gold_pitch_file.hpp>
#include <p4lm/eval/gold_validation.hpp>
#include <p4lm/p4lm.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {
struct JudgeConfig {
  Param<std::string> data{"runs/data", "folder of p4lm data build (catalog.jsonl, config.json, sft/, ...)"};
  Param<std::string> pitches{"",
                             "JSONL with user_id, movie_id, pitch per line: score it (default: validate)"};
  Param<std::string> out{"", "scored pitch file (default: <pitches without .jsonl>.gold.jsonl)"};
  Param<std::string> split{"test", "user split whose teacher pairs validate the judge: train, val or test"};
  Param<bool> json{false, "print the validation or the score summary as JSON"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::JudgeConfig, data, pitches, out, split, json);

namespace p4lm::cli {
namespace {

int judge_main(std::span<const std::string> args) {
  const auto c = parse_flags<JudgeConfig>(args);
  if (*c.split != "train" && *c.split != "val" && *c.split != "test")
    fail<UsageError>("--split: expected train, val or test, got '", *c.split, "'");
  const std::filesystem::path data(*c.data);
  if (!std::filesystem::is_regular_file(data / "catalog.jsonl"))
    fail<UsageError>("--data ", data.string(), ": no catalog.jsonl (run p4lm data build --out ",
                     data.string(), ")");
  const auto judge = eval::GoldJudge::load(data);

  if (c.pitches->empty()) {
    const auto v = eval::validate_gold_judge(judge, data, *c.split);
    if (*c.json)
      std::cout << v.json().dump(2) << '\n';
    else
      std::cout << "gold judge on the teacher's " << *c.split << " pairs of " << data.string() << "\n\n"
                << v.table();
    return 0;
  }
  const std::filesystem::path in(*c.pitches);
  std::filesystem::path out(*c.out);
  if (out.empty()) {
    out = in;
    out.replace_extension();
    out += ".gold.jsonl";
  }
  if (std::filesystem::exists(out) && std::filesystem::equivalent(in, out))
    fail<UsageError>("--out must differ from --pitches");
  const auto scores = eval::score_pitch_file(judge, in, out);
  const auto summary = eval::gold_summary(scores);
  if (*c.json) {
    std::cout << nlohmann::json(summary).dump(2) << '\n';
    return 0;
  }
  std::cout << "scored " << scores.size() << " pitches of " << in.string() << " into " << out.string() << '\n'
            << std::fixed << std::setprecision(3);
  for (const char* dim : {"gold/precision", "gold/personalization", "gold/fluency"})
    std::cout << "  " << dim << ": mean " << summary.at(std::string(dim) + "/mean") << ", std "
              << summary.at(std::string(dim) + "/std") << '\n';
  return 0;
}

const Registration judge_registration{
    "judge", Command{"gold judge (no learned parts): validate on the teacher's test pairs, or score pitches",
                     flags_help<JudgeConfig>(), judge_main}};

}  // namespace
}  // namespace p4lm::cli
