// `p4lm sft`: the warm start (stage 6 of the pipeline). Trains the pitch model on the teacher's corpus:
// stage 1 the CF adapters only (transformer frozen), stage 2 everything; or SFT-Text (--conditioning
// text: the profile as text, no adapters). Checkpoints every --checkpoint-every steps; rerunning the
// same command resumes a killed run and reuses a finished one (--resume false starts over); a resume
// with changed result-changing options is refused (docs/reliability.md).
//   p4lm sft --data runs/main/data --cf runs/main/cf/cf.safetensors --out runs/main/sft
//   p4lm sft --conditioning text --data runs/main/data --out runs/main/sft_text

#include <filesystem>
#include <iostream>

#include <p4lm/p4lm.hpp>
#include <p4lm/train/warm_start.hpp>

#include "p4lm/command.hpp"
#include "p4lm/sft_flags.hpp"

namespace p4lm::cli {
namespace {

int sft_main(std::span<const std::string> args) {
  const auto c = parse_flags<SftConfig>(args);
  auto o = warm_start_options(c);
  o.run_files = {{"config.json", to_json(c).dump(2) + "\n"}};  // written once the first step succeeded
  const auto r = train::run_warm_start(o);
  std::cout << (r.reused ? "reused " : "") << "sft (" << *c.conditioning << ", " << *c.base
            << "): " << r.steps << " steps on " << r.train_sequences << " sequences in " << r.seconds
            << " s\n"
            << "  held-out loss per pitch token: val " << r.val_loss << ", test " << r.test_loss;
  if (o.conditioning == train::Conditioning::cf)
    std::cout << ", test with shuffled user embeddings " << r.test_loss_shuffled_users;
  std::cout << "\n  link sentence (" << r.test_link_tokens << " of " << r.test_tokens
            << " test tokens): " << r.test_link_loss;
  if (o.conditioning == train::Conditioning::cf)
    std::cout << ", with shuffled user embeddings " << r.test_link_loss_shuffled_users;
  std::cout << "\n  artifacts in " << o.out.string() << '\n';
  return 0;
}

const Registration sft_registration{
    "sft", Command{"warm start: SFT of the pitch model (two stages: CF adapters, then all; or SFT-Text)",
                   flags_help<SftConfig>(), sft_main}};

}  // namespace
}  // namespace p4lm::cli
