// The P4LM policy loaded from a warm-started pitch model file: same weights, same prefix layout and
// prompt as SFT and PitchWriter, an independent reference clone, and PPO steps that reach the adapter.

#include <catch2/catch.hpp>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/model/generate.hpp"
#include "p4lm/rl/pitch_policy.hpp"
#include "p4lm/rl/ppo_trainer.hpp"
#include "tiny_pitch_run.hpp"

using namespace p4lm;

namespace {

using p4lm_test::Folder;
using p4lm_test::kDim;
using p4lm_test::TinyRun;

template <class T>
std::vector<T> values(const TensorView<backend::cpu, T>& v) {
  return {v.data(), v.data() + v.numel()};
}

}  // namespace

TEST_CASE("pitch policy: loads the warm start, prefix and prompt as SFT lays them out", "[rl][pitch]") {
  TinyRun run;
  const auto loader = rl::PitchPolicyLoader::open(run.dir.path);  // the run folder
  CHECK(loader.cf_dim() == kDim);
  auto policy = loader.load<kDim>();
  static_assert(rl::check_policy<rl::PitchPolicy<kDim>>());

  // Same weights: the LM's, then the adapter's.
  const auto params = policy.parameters();
  REQUIRE(params.size() == run.lm.parameters().size() + run.adapter.parameters().size());
  for (std::size_t k = 0; k < run.lm.parameters().size(); ++k)
    CHECK(values(params[k].value) == values(run.lm.parameters()[k].value));
  for (std::size_t k = 0; k < run.adapter.parameters().size(); ++k) {
    CHECK(params[run.lm.parameters().size() + k].name == run.adapter.parameters()[k].name);
    CHECK(values(params[run.lm.parameters().size() + k].value) == values(run.adapter.parameters()[k].value));
  }

  // The prompt: PitchWriter's prompt text, encoded as SFT encodes it, BOS moved into the prefix.
  const train::PitchSources sources(run.dir.path);
  rl::PitchPrompter prompter(loader, sources, policy.prefix().keys());
  const auto writer = train::PitchWriter::load(run.dir.path / "model.safetensors");
  const auto p = prompter.prompt(11, 102);
  auto expected = train::encode_prompt(writer.codec(), writer.prompt_text(sources.request(11, 102)),
                                       loader.prompt_options());
  REQUIRE(expected.front() == writer.codec().bos);
  expected.erase(expected.begin());
  CHECK(p.ids == expected);
  CHECK(p.key == 0);
  CHECK(prompter.prompt(12, 100).key == 1);
  CHECK(prompter.prompt(11, 102).key == 0);  // the same pair keeps its key
  CHECK_THROWS_WITH(prompter.prompt(99, 100), Catch::Contains("user 99 is not in"));

  // The prefix: [wte[BOS], adapter(user row 1, item row 2)].
  REQUIRE(policy.prefix_length() == 3);
  CpuTensor<float> prefix(Shape{1, 3, 16}), soft(Shape{1, 2, 16});
  const std::size_t keys[] = {0};
  policy.write_prefix(prefix.view(), keys);
  const cf::Index users[] = {1}, items[] = {2};
  run.adapter.forward(soft.view(), run.cf, users, items);
  const float* wte = run.lm.parameters()[0].value.data() + std::size_t(writer.codec().bos) * 16;
  CHECK(std::vector<float>(prefix.data(), prefix.data() + 16) == std::vector<float>(wte, wte + 16));
  CHECK(std::vector<float>(prefix.data() + 16, prefix.data() + 48) == values(soft.view()));

  // End to end: greedy decoding from the policy's prefix + prompt gives PitchWriter's greedy pitch.
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 12;
  Rng rng(3);
  auto pitch = writer.generate_ids(sources.request(11, 102), rng, greedy);
  Generator<LlamaLM<float>> gen(policy.lm());
  greedy.eos = writer.codec().eos;
  const std::vector<std::vector<std::int32_t>> prompts{p.ids};
  auto out = gen.generate(prompts, greedy, prefix.view());
  auto ids = out.tokens[0];
  if (!ids.empty() && ids.back() == writer.codec().eos) ids.pop_back();
  REQUIRE(!pitch.empty());
  CHECK(ids == pitch);
}

TEST_CASE("pitch policy: the reference is independent; PPO trains LM and adapter", "[rl][pitch]") {
  TinyRun run;
  const auto loader = rl::PitchPolicyLoader::open(run.dir.path / "model.safetensors");
  auto policy = loader.load<kDim>();
  const train::PitchSources sources(run.dir.path);
  rl::PitchPrompter prompter(loader, sources, policy.prefix().keys());
  std::vector<rl::Prompt> prompts;
  for (int u = 0; u < 3; ++u)
    for (int m = 0; m < 2; ++m) prompts.push_back(prompter.prompt(10 + u, 100 + m));

  auto reference = policy.clone();
  policy.parameters().back().value.data()[0] += 1.0f;  // the adapter's last tensor
  CHECK(reference.parameters().back().value.data()[0] + 1.0f == policy.parameters().back().value.data()[0]);
  policy.parameters().back().value.data()[0] -= 1.0f;
  // Keys handed out after cloning are seen by both (one shared table).
  CHECK(reference.prefix().keys().size() == 6);

  // Reward: response tokens below 256 for even users, above for odd ones. Any reward that varies will
  // do: the point is that the gradient reaches the adapter and BOS's row through the prefix.
  const auto* keys = &policy.prefix().keys();
  auto reward = [keys](std::span<const rl::Sample> batch) {
    std::vector<double> s;
    for (const auto& x : batch) {
      const bool low = keys->at(x.key).user_row % 2 == 0;
      s.push_back(double(std::count_if(x.response.begin(), x.response.end(),
                                       [low](std::int32_t t) { return (t < 256) == low; })));
    }
    return s;
  };
  rl::PPOConfig c;
  c.batch_size = 6;
  c.mini_batch_size = 6;  // one minibatch: its ratio is exactly 1
  c.ppo_epochs = 1;
  c.learning_rate = 1e-2;
  c.response_length = 5;
  c.eos_token_id = loader.codec().eos;
  const auto before = values(policy.prefix().adapter().parameters()[0].value);
  const auto wte_before = values(policy.lm().parameters()[0].value);
  rl::PPOTrainer<rl::PitchPolicy<kDim>, decltype(reward)> ppo(std::move(policy), reward, c);
  const auto m = ppo.step(prompts);
  CHECK(m.at("objective/kl") == Approx(0).margin(1e-5));  // first iteration: policy == reference
  CHECK(m.at("policy/ratio") == Approx(1).margin(1e-3));
  auto& trained = ppo.policy();
  CHECK(values(trained.prefix().adapter().parameters()[0].value) != before);
  CHECK(values(trained.lm().parameters()[0].value) != wte_before);
}

TEST_CASE("pitch policy: refuses files it cannot train, naming them", "[rl][pitch]") {
  Folder dir("pitch_policy_bad");
  CHECK_THROWS_WITH(rl::PitchPolicyLoader::open(dir.path),
                    Catch::Contains("model.safetensors does not exist"));
  TinyRun run;
  LlamaLM<float> lm(TinyRun::config());
  save_checkpoint(dir.path / "model.safetensors", lm);
  CHECK_THROWS_WITH(rl::PitchPolicyLoader::open(dir.path), Catch::Contains("not a pitch model"));
}
