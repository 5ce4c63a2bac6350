// SmolLM2-135M-Instruct (GGUF, model cache) as the warm start's base model: its codec (the GGUF's
// own BPE and bos/eos ids, text round trips, ChatML prompts identical to the chat template's), then
// a 2+2-step warm start training the top 2 blocks whose pitch model PitchWriter and the RL loader
// rebuild with the same codec and prompts. Skipped when the model cache lacks SmolLM2.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/gguf.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/gguf_model.hpp"
#include "p4lm/rl/pitch_policy.hpp"
#include "p4lm/text/chat_template.hpp"
#include "p4lm/train/pitch_writer.hpp"
#include "p4lm/train/prompt_format.hpp"
#include "p4lm/train/warm_start.hpp"
#include "skip.hpp"

namespace {

constexpr const char* kSmolPitch =
    "A tense heist on the streets of Los Angeles. Since you love crime stories, this one is for you. "
    "Watch it tonight.";

p4lm::data::SftExample smol_example(std::int64_t user, std::int64_t movie, const std::string& title) {
  p4lm::data::SftExample e;
  e.user_id = user, e.movie_id = movie, e.title = title, e.year = 1995, e.genres = {"Crime", "Thriller"};
  e.overview = "A group of professional bank robbers plan one last job. The police close in.";
  e.profile = "Loves crime; dislikes musicals.";
  e.pitch = kSmolPitch;
  const std::string p = e.pitch;
  e.link_span = {p.find("Since"), p.find(" Watch")};
  return e;
}

}  // namespace

TEST_CASE("smollm2 base: the GGUF codec round-trips text and lays prompts out in ChatML",
          "[train][sft][smollm2]") {
  const auto path = p4lm::smollm2_path();
  if (!path) P4LM_SKIP("SmolLM2 not in the model cache (run scripts/fetch-models.sh)");
  const p4lm::io::GgufFile f(*path);
  const auto config = p4lm::gguf_model_config(f);
  const auto base = p4lm::train::base_codec("smollm2", config);
  const auto& codec = base.codec;
  CHECK(codec.bos == f.get<std::int32_t>("tokenizer.ggml.bos_token_id"));
  CHECK(codec.eos == f.get<std::int32_t>("tokenizer.ggml.eos_token_id"));
  const std::int32_t ends[] = {codec.bos, codec.eos};
  CHECK(codec.decode(std::span(ends)) == "<|im_start|><|im_end|>");
  CHECK(codec.vocab_size == config.vocab_size);
  CHECK(base.format == p4lm::train::PromptFormat::chatml);
  // The same from a .gguf path as the base, and as a tokenizer override of another name.
  CHECK(p4lm::train::base_codec(path->string(), config).codec.eos == codec.eos);
  CHECK(p4lm::train::base_codec("scratch", config, *path).format == p4lm::train::PromptFormat::chatml);
  // A non-GGUF tokenizer for a GGUF base is refused (stories260K's 512 pieces fit its vocabulary).
  CHECK_THROWS_WITH(
      p4lm::train::base_codec("smollm2", config, p4lm::data_path("tiny-lm/stories260K/tok512.bin")),
      Catch::Contains("brings its own tokenizer"));

  for (const std::string text :
       {"Heat (1995). Action, Crime, Thriller.", "Am\xc3\xa9lie: na\xc3\xafve caf\xc3\xa9 in 2001, 42% off!",
        "  two  spaces\nand a new line\ttab", "Don't you love it? It's 3.14159 times better."}) {
    INFO(text);
    const auto ids = codec.encode(text);
    CHECK(!ids.empty());
    for (const auto id : ids) CHECK((id >= 0 && static_cast<std::size_t>(id) < config.vocab_size));
    CHECK(codec.decode(ids) == text);
  }

  // The prompt is the chat template's rendering of one user turn (no system turn), to the token.
  const p4lm::train::PromptOptions o{};
  const std::string prompt =
      "Heat (1995). Crime, Thriller. A group of professional bank robbers plan one last job.";
  const auto ids = p4lm::train::format_prompt(codec, base.format, prompt, o);
  const p4lm::text::ChatTemplate chat{};
  CHECK(ids == codec.encode(chat.format({{"user", prompt + "\n" + o.marker}})));
  CHECK(codec.decode(ids) == "<|im_start|>user\n" + prompt + "\nPitch:<|im_end|>\n<|im_start|>assistant\n");
  // Truncation keeps the turn's frame.
  p4lm::train::PromptOptions short_prompt = o;
  short_prompt.max_prompt_tokens = 16;
  const auto cut = p4lm::train::format_prompt(codec, base.format, prompt, short_prompt);
  CHECK(cut.size() == 16);
  CHECK(codec.decode(cut).ends_with("\nPitch:<|im_end|>\n<|im_start|>assistant\n"));

  // A training sequence: the prompt, the pitch, <|im_end|>; the link range moved with the prompt.
  const std::string pitch = kSmolPitch;
  const std::size_t span[] = {pitch.find("Since"), pitch.find(" Watch")};
  const auto s = p4lm::train::format_example(codec, base.format, prompt, pitch, o, span);
  CHECK(std::vector<std::int32_t>(s.ids.begin(), s.ids.begin() + s.prompt_len) == ids);
  CHECK(s.ids.back() == codec.eos);
  CHECK(codec.decode(std::span(s.ids).subspan(s.prompt_len, s.ids.size() - s.prompt_len - 1)) == pitch);
  REQUIRE(s.link_end > s.link_begin);
  CHECK(codec.decode(std::span(s.ids).subspan(s.link_begin, s.link_end - s.link_begin)) ==
        " Since you love crime stories, this one is for you.");

  // stories260K keeps its plain format and llama2.c pieces.
  const auto stories = std::get<p4lm::LlamaLM<float>>(p4lm::train::load_base_lm("stories260K"));
  const auto plain = p4lm::train::base_codec("stories260K", stories.config());
  CHECK(plain.format == p4lm::train::PromptFormat::plain);
  CHECK(plain.codec.vocab_size == 512);
  CHECK(p4lm::train::format_prompt(plain.codec, plain.format, prompt, o) ==
        p4lm::train::encode_prompt(plain.codec, prompt, o));
}

TEST_CASE("smollm2 warm start: 2+2 steps on the top 2 blocks; PitchWriter and the RL loader rebuild it",
          "[train][sft][smollm2]") {
  namespace fs = std::filesystem;
  const auto path = p4lm::smollm2_path();
  if (!path) P4LM_SKIP("SmolLM2 not in the model cache (run scripts/fetch-models.sh)");
  const auto root = fs::temp_directory_path() / ("p4lm_test_smollm2_sft_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "data" / "sft");
  constexpr int Dim = 16;
  p4lm::cf::Embeddings<Dim> e(3, 3);
  e.user_ids = {1, 2, 3}, e.item_ids = {10, 11, 12};
  p4lm::Rng rng(3);
  for (auto& v : e.users) v = static_cast<float>(rng.normal());
  for (auto& v : e.items) v = static_cast<float>(rng.normal());
  p4lm::cf::save_embeddings(e, root / "cf.safetensors");
  p4lm::data::write_records(root / "data" / "sft" / "train.jsonl",
                            std::vector{smol_example(1, 10, "Heat"), smol_example(2, 11, "Ronin"),
                                        smol_example(1, 12, "Thief"), smol_example(3, 10, "Heat")});
  p4lm::data::write_records(root / "data" / "sft" / "val.jsonl",
                            std::vector{smol_example(2, 10, "Heat"), smol_example(3, 11, "Ronin")});
  p4lm::data::write_records(root / "data" / "sft" / "test.jsonl",
                            std::vector{smol_example(3, 12, "Thief"), smol_example(2, 12, "Thief")});

  p4lm::train::WarmStartOptions o;
  o.data = root / "data", o.cf = root / "cf.safetensors", o.out = root / "sft", o.base = "smollm2";
  o.prompt.max_pitch_tokens = 40;
  o.sft = {.batch_size = 2,
           .stage1_steps = 2,
           .stage2_steps = 2,
           .train_top_layers = 2,
           .warmup_steps = 1,
           .eval_every = 0,
           .checkpoint_every = 2,
           .progress = false};
  const auto r = p4lm::train::run_warm_start(o);
  CHECK(r.steps == 4);
  CHECK(r.train_sequences == 4);
  CHECK(std::isfinite(r.test_loss));
  CHECK(std::isfinite(r.test_link_loss));
  CHECK(std::isfinite(r.test_link_loss_shuffled_users));

  // The model file: complete, its lower 28 blocks and the embeddings bit-identical to the base.
  auto base = p4lm::load_gguf_model(*path).model;
  {
    p4lm::LlamaLM<float> lm(base.config());
    p4lm::CFAdapter<Dim, 1, float> adapter(lm.config().d_model);
    p4lm::train::PitchModel<p4lm::LlamaLM<float>, p4lm::CFAdapter<Dim, 1, float>> bundle(lm, &adapter);
    p4lm::load_checkpoint_into(bundle, o.out / "model.safetensors");
    std::size_t same = 0, moved = 0;
    for (std::size_t k = 0; k < lm.parameters().size(); ++k) {
      const auto& a = lm.parameters()[k].value;
      const auto& b = base.parameters()[k].value;
      const bool equal = std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0;
      const auto& name = lm.parameters()[k].name;
      const auto block = p4lm::train::PitchModel<p4lm::LlamaLM<float>, p4lm::CFAdapter<Dim>>::block_of(name);
      const bool trained = name == "norm.weight" || (block && *block >= 28);
      INFO(name);
      CHECK(equal == !trained);
      (equal ? same : moved) += 1;
    }
    CHECK(moved == 2 * 9 + 1);  // 9 tensors per block, and the final norm
  }
  // The checkpoint holds the trained tensors and their moments only.
  const auto st = p4lm::io::SafetensorsFile::open(o.out / "checkpoint.safetensors");
  CHECK(st.contains("layers.29.attention.wq.weight"));
  CHECK(st.contains("optimizer.m/layers.28.feed_forward.w2.weight"));
  CHECK_FALSE(st.contains("layers.0.attention.wq.weight"));
  CHECK_FALSE(st.contains("tok_embeddings.weight"));
  CHECK_FALSE(st.contains("optimizer.m/layers.27.attention.wq.weight"));
  const auto meta = nlohmann::json::parse(
      p4lm::io::SafetensorsFile::open(o.out / "model.safetensors").metadata().at("pitch_model"));
  CHECK(meta.at("base") == "smollm2");
  CHECK(meta.at("prompt_format") == "chatml");
  CHECK(meta.at("train_top_layers") == 2);

  // PitchWriter rebuilds the codec and the ChatML prompt, and writes a pitch that stops at <|im_end|>.
  const auto writer = p4lm::train::PitchWriter::load(o.out / "model.safetensors");
  CHECK(writer.prompt_format() == p4lm::train::PromptFormat::chatml);
  CHECK(writer.codec().bos == 1);
  CHECK(writer.codec().eos == 2);
  p4lm::train::PitchRequest request{.user_id = 2,
                                    .movie_id = 12,
                                    .title = "Thief",
                                    .year = 1981,
                                    .genres = {"Crime"},
                                    .overview = "A safecracker takes one last job.",
                                    .profile = "",
                                    .embedding_user_id = std::nullopt};
  auto sampling = p4lm::train::pitch_sampling();
  sampling.max_new_tokens = 12;
  p4lm::Rng sample_rng(9);
  const auto ids = writer.generate_ids(request, sample_rng, sampling);
  CHECK(!ids.empty());
  CHECK(ids.size() <= 12);
  for (const auto id : ids) CHECK(id != writer.codec().eos);
  const std::string pitch = writer.codec().decode(ids);
  CHECK(pitch.find("<|im_start|>") == std::string::npos);

  // The RL stage's loader and prompter: the same codec and prompt ids, BOS left to the prefix.
  const auto loader = p4lm::rl::PitchPolicyLoader::open(o.out);
  CHECK(loader.prompt_format() == p4lm::train::PromptFormat::chatml);
  CHECK(loader.codec().bos == 1);
  p4lm::io::write_file_atomically(root / "data" / "catalog.jsonl",
                                  "{\"movie_id\":12,\"title\":\"Thief\",\"year\":1981,\"genres\":[\"Crime\"],"
                                  "\"overview\":\"A safecracker takes one last job.\"}\n");
  p4lm::io::write_file_atomically(root / "data" / "profiles.jsonl",
                                  "{\"user_id\":2,\"text\":\"\",\"split\":\"test\"}\n");
  const p4lm::train::PitchSources sources(root / "data");
  p4lm::rl::PitchKeys keys{p4lm::train::CfRows(e)};
  p4lm::rl::PitchPrompter prompter(loader, sources, keys);
  const auto prompt = prompter.prompt(2, 12);
  auto expected = p4lm::train::format_prompt(writer.codec(), writer.prompt_format(),
                                             writer.prompt_text(request), loader.prompt_options());
  expected.erase(expected.begin());
  CHECK(prompt.ids == expected);
  fs::remove_all(root);
}
