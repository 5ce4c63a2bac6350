#pragma once
// Supervised fine-tuning of the pitch model with the paper's two-stage warm start (Jeong et al.
// 2023, §4): stage 1 trains only the CF adapters (W_U, W_I) with the transformer frozen, so the soft
// tokens learn to speak the frozen model's language; stage 2 trains everything. The same trainer
// runs SFT-Text (the profile as text in the prompt, no adapter, one stage) and the single-stage
// ablation (stage1_steps = 0).
//
//   p4lm::train::SftTrainer<p4lm::LlamaLM<>, p4lm::CFAdapter<32>> trainer(lm, &adapter, &cf, train, val,
//   options); trainer.fit();                              // both stages; resumes from
//   out/checkpoint.safetensors double loss = trainer.evaluate(test);       // held-out mean cross-entropy per
//   pitch token
//
// Each step: a batch of `batch_size` sequences (a seeded shuffle per epoch, a pure function of
// (seed, step), so a resumed run sees the same batches), AdamW with global-norm clipping, linear
// warmup + cosine decay per stage. Every checkpoint_every steps an atomic checkpoint holds the LM and
// adapter parameters, the optimizer's moments and step count, the global step and the data order's
// RNG position: a killed run resumes losing at most one interval and continues bit-identically.
// Metrics: out/train_metrics.{jsonl,csv} per log_every steps, out/eval_metrics.{jsonl,csv} per eval.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/metrics.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/nn/schedule.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/soft_prompt.hpp"

namespace p4lm::train {

struct SftOptions {
  std::size_t batch_size = 16;
  std::size_t stage1_steps = 100;  // adapters only, transformer frozen (0: single-stage ablation)
  std::size_t stage2_steps = 400;  // everything
  double stage1_lr = 3e-3;
  double stage2_lr = 1e-3;
  double stage2_adapter_lr = 0;   // peak learning rate of the adapters in stage 2 (0: stage2_lr)
  double min_lr_ratio = 0.1;      // cosine decays to this fraction of the peak
  std::size_t warmup_steps = 20;  // per stage (capped at a tenth of the stage)
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  // Weight of the link sentence's tokens (SftSequence::link_begin/end) in the training loss, which
  // is then the weighted mean over pitch tokens; 1 is the plain mean. Evaluation is never weighted.
  double link_weight = 1.0;
  std::size_t link_weight_steps = 0;  // global steps link_weight lasts (0: the whole run) ...
  double link_weight_after = 1.0;     // ... and the weight from then on
  std::size_t eval_every = 100;       // 0: only at the end of each stage
  std::size_t eval_examples = 0;      // first k held-out sequences per evaluation (0: all)
  std::size_t log_every = 10;
  std::size_t checkpoint_every = 100;  // 0: no checkpoints
  std::uint64_t seed = 1;
  bool progress = true;
  // CF conditioning: the prefix is [BOS, soft tokens] and the text follows BOS (soft_prompt.hpp);
  // false puts the soft tokens before BOS, at the pretrained model's attention sink (an ablation).
  bool soft_tokens_after_bos = true;
  std::size_t stop_after = 0;  // stop once the global step reaches this (0: run to the end); tests
                               // and time-boxed runs use it, the checkpoint then allows resuming
};

// Held-out cross-entropy per pitch token: all of it, the link sentence's tokens (where the pitch
// depends on the user: the adapters can only help there) and the rest. NaN where nothing counted.
struct SftLoss {
  double loss = std::numeric_limits<double>::quiet_NaN();
  double link_loss = std::numeric_limits<double>::quiet_NaN();
  double other_loss = std::numeric_limits<double>::quiet_NaN();
  std::size_t tokens = 0, link_tokens = 0;
};

// One periodic held-out evaluation: the real users' embeddings and, with CF conditioning, the
// shuffled-users control (tokens == 0 without it).
struct SftEvalRecord {
  SftLoss real, shuffled;

  // The eval_metrics record: eval_loss, eval_link_loss (+ *_shuffled_users with the control).
  std::map<std::string, double> fields(int stage) const {
    std::map<std::string, double> f{
        {"stage", stage}, {"eval_loss", real.loss}, {"eval_link_loss", real.link_loss}};
    if (shuffled.tokens) {
      f["eval_loss_shuffled_users"] = shuffled.loss;
      f["eval_link_loss_shuffled_users"] = shuffled.link_loss;
    }
    return f;
  }
};

// Where a run stands: global step g counts optimizer updates over both stages.
struct SftPosition {
  std::size_t step = 0;
  int stage(const SftOptions& o) const { return step < o.stage1_steps ? 1 : 2; }
};

// A model and its adapter seen as one parameter list (for AdamW and checkpoints). The entries are
// copies of the modules' Parameter records: views into the same memory, so updates land in the
// modules; trainable flags are pushed back with sync_to_modules().
template <class LM, class Adapter>
class PitchModel {
 public:
  using value_type = typename LM::value_type;
  using T = value_type;

  PitchModel(LM& lm, Adapter* adapter) : lm_(&lm), adapter_(adapter) { sync_from_modules(); }

  const ModelConfig& config() const { return lm_->config(); }
  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  LM& lm() noexcept { return *lm_; }
  Adapter* adapter() noexcept { return adapter_; }
  const Adapter* adapter() const noexcept { return adapter_; }

  void sync_from_modules() {
    params_.clear();
    for (const auto& p : lm_->parameters()) params_.push_back(p);
    if (adapter_)
      for (const auto& p : adapter_->parameters()) params_.push_back(p);
  }
  void sync_to_modules() {
    std::size_t k = 0;
    for (auto& p : lm_->parameters()) p.trainable = params_[k++].trainable;
    if (adapter_)
      for (auto& p : adapter_->parameters()) p.trainable = params_[k++].trainable;
  }
  // Stage 1: only adapter.*; stage 2: everything.
  void set_stage(int stage) {
    for (auto& p : params_) p.trainable = stage == 2 || p.name.starts_with("adapter.");
    sync_to_modules();
  }
  void zero_grad() {
    lm_->zero_grad();
    if (adapter_) adapter_->zero_grad();
  }

 private:
  LM* lm_;
  Adapter* adapter_;
  std::vector<Parameter<T>> params_;
};

template <class LM, class Adapter = CFAdapter<32, 1, typename LM::value_type>>
class SftTrainer {
 public:
  using T = typename LM::value_type;
  using Embeddings = cf::Embeddings<Adapter::dim>;
  using View = TensorView<backend::cpu, T>;

  // CF conditioning: adapter and cf given. Text conditioning: both null (no prefix, one stage).
  // `out` empty: no files (no metrics, no checkpoints).
  SftTrainer(LM& lm, Adapter* adapter, const Embeddings* cf, std::vector<SftSequence> train,
             std::vector<SftSequence> eval, SftOptions options, std::filesystem::path out = {})
      : model_(lm, adapter),
        cf_(cf),
        train_(std::move(train)),
        eval_(std::move(eval)),
        o_(options),
        out_(std::move(out)) {
    if ((adapter == nullptr) != (cf == nullptr))
      fail<InvalidArgument>("SftTrainer: CF conditioning needs both an adapter and CF embeddings");
    if (!adapter) o_.stage1_steps = 0;  // nothing to warm up without adapters
    if (train_.empty()) fail<InvalidArgument>("SftTrainer: no training sequences");
    if (o_.batch_size == 0) fail<InvalidArgument>("SftTrainer: batch_size must be > 0");
    for (const auto& [name, w] :
         {std::pair{"link_weight", o_.link_weight}, {"link_weight_after", o_.link_weight_after}})
      if (!(w >= 0) || !std::isfinite(w))
        fail<InvalidArgument>("SftTrainer: ", name, " must be finite and >= 0, got ", w);
    if (adapter && adapter->d_model() != lm.config().d_model)
      fail<InvalidArgument>("SftTrainer: adapter width ", adapter->d_model(), " != model width ",
                            lm.config().d_model);
    if (adapter && o_.soft_tokens_after_bos) soft_.emplace(train_.front().ids.front());
    const std::size_t P = prefix_len(), skip = bos_in_prefix() ? 1 : 0;
    for (const auto* set : {&train_, &eval_})
      for (const auto& s : *set) {
        if (P + s.ids.size() - 1 - skip > lm.config().max_seq)
          fail<InvalidArgument>("SftTrainer: sequence of user ", s.user_id, ", movie ", s.movie_id, " needs ",
                                P + s.ids.size() - 1 - skip, " positions, the model has ",
                                lm.config().max_seq);
        if (soft_ && (s.ids.empty() || s.ids.front() != soft_->bos()))
          fail<InvalidArgument>("SftTrainer: sequence of user ", s.user_id, ", movie ", s.movie_id,
                                " does not start with the BOS token ", soft_->bos(), " of the others");
        if (adapter && (s.user < 0 || static_cast<std::size_t>(s.user) >= cf->n_users() || s.item < 0 ||
                        static_cast<std::size_t>(s.item) >= cf->n_items()))
          fail<InvalidArgument>("SftTrainer: user ", s.user_id, " / movie ", s.movie_id,
                                " has no CF embedding (rows ", s.user, ", ", s.item, ")");
      }
  }

  // Positions before the text: [BOS, soft tokens] (soft_prompt.hpp), the bare soft tokens (the
  // before-BOS ablation), or none (text conditioning).
  std::size_t prefix_len() const noexcept {
    return soft_ ? Prompt::length : model_.adapter() ? Adapter::prefix_length : 0;
  }
  bool bos_in_prefix() const noexcept { return soft_.has_value(); }
  const SftOptions& options() const noexcept { return o_; }
  SftPosition position() const noexcept { return pos_; }
  std::size_t total_steps() const noexcept { return o_.stage1_steps + o_.stage2_steps; }
  std::filesystem::path checkpoint_path() const { return out_ / "checkpoint.safetensors"; }
  bool done() const noexcept { return pos_.step >= total_steps(); }

  // Loads out/checkpoint.safetensors if it exists: parameters, optimizer state, step. Returns
  // whether it did.
  bool resume() {
    if (out_.empty() || !std::filesystem::exists(checkpoint_path())) return false;
    const std::map<std::string, std::string> meta = io::SafetensorsFile::open(checkpoint_path()).metadata();
    const auto it = meta.find("sft");
    if (it == meta.end())
      throw ParseError(checkpoint_path(), 0, "__metadata__", "not an SFT checkpoint (no 'sft' entry)");
    const nlohmann::json sft = nlohmann::json::parse(it->second);
    const std::uint64_t seed = sft.at("data_seed");
    const std::size_t batch = sft.at("batch_size"), s1 = sft.at("stage1_steps");
    if (sft.value("soft_tokens_after_bos", false) != o_.soft_tokens_after_bos)
      fail<InvalidArgument>(checkpoint_path().string(), ": written with the soft tokens ",
                            o_.soft_tokens_after_bos ? "before" : "after", " BOS; this run puts them ",
                            o_.soft_tokens_after_bos ? "after" : "before");
    if (seed != o_.seed || batch != o_.batch_size || s1 != o_.stage1_steps)
      fail<InvalidArgument>(checkpoint_path().string(), ": written with seed ", seed, ", batch ", batch,
                            ", stage-1 steps ", s1, "; this run has ", o_.seed, ", ", o_.batch_size, ", ",
                            o_.stage1_steps);
    pos_.step = sft.at("step");
    begin_stage(pos_.stage(o_));
    load_checkpoint_into(model_, checkpoint_path(), &opt_);
    set_param_groups(pos_.stage(o_));  // the loaded optimizer holds state, not configuration
    model_.sync_to_modules();
    return true;
  }

  // Trains from the current position to the end of stage 2 (or stop_after); returns the final
  // held-out loss (NaN without held-out data).
  double fit() {
    std::optional<MetricsSink> train_log, eval_log;
    if (!out_.empty()) {
      // Records after the resumed step were logged by the run that died; they are logged again.
      for (const char* name : {"train_metrics", "eval_metrics"})
        MetricsSink::drop_after(static_cast<long>(pos_.step), out_ / (std::string(name) + ".jsonl"),
                                out_ / (std::string(name) + ".csv"));
      train_log.emplace(out_ / "train_metrics.jsonl", out_ / "train_metrics.csv");
      eval_log.emplace(out_ / "eval_metrics.jsonl", out_ / "eval_metrics.csv");
    }
    const std::size_t end = o_.stop_after ? std::min(o_.stop_after, total_steps()) : total_steps();
    std::optional<Progress> bar;
    if (o_.progress && pos_.step < end) bar.emplace("sft", end, "steps");
    if (bar) bar->advance(pos_.step);
    int stage = 0;
    double last_eval = std::numeric_limits<double>::quiet_NaN();
    double loss_sum = 0;
    std::size_t loss_n = 0, tokens = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (pos_.step < end) {
      if (pos_.stage(o_) != stage) {
        stage = pos_.stage(o_);
        if (stage != stage_ready_) begin_stage(stage);
      }
      const auto [loss, norm, lr] = train_step();
      ++pos_.step;
      loss_sum += loss, ++loss_n, tokens += batch_.counted;
      if (bar) bar->advance(1, "stage " + std::to_string(stage) + " loss " + fmt(loss));
      const bool stage_end = pos_.step == o_.stage1_steps || pos_.step == total_steps();
      if (train_log && (pos_.step % std::max<std::size_t>(o_.log_every, 1) == 0 || stage_end)) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        train_log->record(static_cast<long>(pos_.step), {{"stage", stage},
                                                         {"loss", loss_sum / static_cast<double>(loss_n)},
                                                         {"lr", lr},
                                                         {"grad_norm", norm},
                                                         {"tokens_per_s", secs > 0 ? tokens / secs : 0.0}});
        loss_sum = 0, loss_n = 0, tokens = 0;
        t0 = std::chrono::steady_clock::now();
      }
      if (!eval_.empty() && (stage_end || (o_.eval_every && pos_.step % o_.eval_every == 0))) {
        const SftEvalRecord r = evaluate_subset();
        last_eval = r.real.loss;
        if (eval_log) eval_log->record(static_cast<long>(pos_.step), r.fields(stage));
        if (bar) bar->set_note("stage " + std::to_string(stage) + " held-out " + fmt(last_eval));
      }
      if (!out_.empty() && o_.checkpoint_every && (pos_.step % o_.checkpoint_every == 0 || pos_.step == end))
        save_training_checkpoint();
    }
    if (bar) bar->finish();
    if (std::isnan(last_eval) && !eval_.empty()) last_eval = evaluate_subset().real.loss;
    return last_eval;
  }

  // Whether batch position `pos` predicts a token of the sequence's link sentence.
  bool predicts_link(const SftSequence& q, std::size_t pos) const {
    const std::size_t predicted = pos - prefix_len() + 1 + (bos_in_prefix() ? 1 : 0);  // index in q.ids
    return predicted >= q.link_begin && predicted < q.link_end;
  }

  // Mean cross-entropy per pitch token over `seqs` (the model's current parameters), overall and
  // split into the link sentence (where the pitch depends on the user) and the rest. With
  // shuffle_users, each sequence gets the CF embedding of a random OTHER user (seeded): the control
  // that tells whether the adapters use who the user is.
  SftLoss evaluate_split(std::span<const SftSequence> seqs, bool shuffle_users = false,
                         std::uint64_t shuffle_seed = 7) {
    SftLoss out;
    if (seqs.empty()) return out;
    if (shuffle_users && !model_.adapter())
      fail<InvalidArgument>("SftTrainer::evaluate: no CF embeddings to shuffle");
    Rng rng(shuffle_seed, 0x5a0ffULL);
    double sum[2] = {0, 0};  // other, link
    std::size_t count[2] = {0, 0};
    std::vector<const SftSequence*> ptrs;
    const std::size_t P = prefix_len();
    for (std::size_t start = 0; start < seqs.size(); start += o_.batch_size) {
      const std::size_t stop = std::min(seqs.size(), start + o_.batch_size);
      ptrs.clear();
      for (std::size_t k = start; k < stop; ++k) ptrs.push_back(&seqs[k]);
      batch_.build(ptrs, P, bos_in_prefix());
      if (shuffle_users) {
        const auto n = static_cast<std::uint64_t>(cf_->n_users());
        for (auto& u : batch_.users) {
          auto other = static_cast<cf::Index>(rng.below(n - 1));
          if (other >= u) ++other;
          u = other;
        }
      }
      const std::size_t S = batch_.targets.dim(1);
      logprobs_.resize(Shape{ptrs.size(), S});
      forward_logprobs_batch(logprobs_.view());
      for (std::size_t b = 0; b < ptrs.size(); ++b)
        for (std::size_t pos = P; pos < S; ++pos) {
          if (batch_.targets.data()[b * S + pos] == ops::ignore_index_default) continue;
          const bool link = predicts_link(*ptrs[b], pos);
          sum[link] -= static_cast<double>(logprobs_.data()[b * S + pos]);
          ++count[link];
        }
    }
    const auto mean = [](double s, std::size_t n) {
      return n ? s / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
    };
    out.tokens = count[0] + count[1], out.link_tokens = count[1];
    out.loss = mean(sum[0] + sum[1], out.tokens);
    out.link_loss = mean(sum[1], count[1]);
    out.other_loss = mean(sum[0], count[0]);
    return out;
  }

  // The mean cross-entropy per pitch token of evaluate_split().
  double evaluate(std::span<const SftSequence> seqs, bool shuffle_users = false,
                  std::uint64_t shuffle_seed = 7) {
    return evaluate_split(seqs, shuffle_users, shuffle_seed).loss;
  }

  // The LM and adapter parameters only, for pitch generation (no optimizer state).
  void save_model(const std::filesystem::path& path, const std::map<std::string, std::string>& extra = {}) {
    save_checkpoint(path, model_, static_cast<AdamW<T>*>(nullptr), extra);
  }

 private:
  static std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }

  // The periodic held-out evaluation; with CF conditioning also the shuffled-users control, so the
  // metrics show when (and whether) the model starts to read who the user is.
  SftEvalRecord evaluate_subset() {
    const std::size_t n = o_.eval_examples ? std::min(o_.eval_examples, eval_.size()) : eval_.size();
    const std::span<const SftSequence> seqs(eval_.data(), n);
    SftEvalRecord r{.real = evaluate_split(seqs), .shuffled = {}};
    if (model_.adapter()) r.shuffled = evaluate_split(seqs, true, o_.seed);
    return r;
  }

  void begin_stage(int stage) {
    model_.set_stage(stage);
    const auto params = model_.parameters();
    opt_ = AdamW<T>(std::span<const Parameter<T>>(params.data(), params.size()),
                    AdamWOptions{.lr = stage == 1 ? o_.stage1_lr : o_.stage2_lr,
                                 .weight_decay = o_.weight_decay,
                                 .max_grad_norm = o_.max_grad_norm});
    set_param_groups(stage);
    const std::size_t steps = stage == 1 ? o_.stage1_steps : o_.stage2_steps;
    const double peak = stage == 1 ? o_.stage1_lr : o_.stage2_lr;
    schedule_ = WarmupCosine{.peak_lr = peak,
                             .warmup_steps = std::min(o_.warmup_steps, std::max<std::size_t>(1, steps / 10)),
                             .total_steps = steps,
                             .min_lr = peak * o_.min_lr_ratio};
    stage_ready_ = stage;
  }

  // Stage 2 may step the adapters at their own learning rate: the LM is pretrained and wants a gentle
  // rate, the adapters are young and learn too slowly at it (docs/results.md, third pass).
  void set_param_groups(int stage) {
    if (stage == 2 && model_.adapter() && o_.stage2_adapter_lr > 0)
      opt_.scale_lr("adapter.*", o_.stage2_adapter_lr / o_.stage2_lr);
  }

  // Sequence index of flat data position k: epoch k / N reads a Fisher-Yates permutation drawn from
  // Rng(seed, epoch). The permutation of the current epoch is cached.
  std::size_t example_at(std::size_t k) {
    const std::size_t N = train_.size(), epoch = k / N;
    if (epoch != perm_epoch_ || perm_.size() != N) {
      perm_.resize(N);
      for (std::size_t i = 0; i < N; ++i) perm_[i] = i;
      data_rng_ = Rng(o_.seed, 0xda7a0000ULL + epoch);
      for (std::size_t i = N; i > 1; --i)
        std::swap(perm_[i - 1], perm_[static_cast<std::size_t>(data_rng_.below(i))]);
      perm_epoch_ = epoch;
    }
    return perm_[k % N];
  }

  LMInput<T> batch_input() {
    LM& lm = model_.lm();
    LMInput<T> in{
        .ids = batch_.ids.view(), .targets = batch_.targets.view(), .lengths = batch_.lengths.view()};
    if (Adapter* adapter = model_.adapter()) {
      prefix_.resize(Shape{batch_.users.size(), prefix_len(), lm.config().d_model});
      if (soft_)
        soft_->forward(prefix_.view(), lm, *adapter, *cf_, batch_.users, batch_.items);
      else
        adapter->forward(prefix_.view(), *cf_, batch_.users, batch_.items);
      in.prefix = prefix_.view();
    }
    return in;
  }
  T forward_batch() { return model_.lm().forward(batch_input()); }
  void forward_logprobs_batch(View logprobs) { model_.lm().forward_logprobs(batch_input(), logprobs); }

  struct StepResult {
    double loss, grad_norm, lr;
  };

  StepResult train_step() {
    ptrs_.resize(o_.batch_size);
    for (std::size_t b = 0; b < o_.batch_size; ++b)
      ptrs_[b] = &train_[example_at(pos_.step * o_.batch_size + b)];
    batch_.build(ptrs_, prefix_len(), bos_in_prefix());
    model_.zero_grad();
    const double w = link_weight_now();
    const double loss = w == 1.0 ? static_cast<double>(forward_batch()) : weighted_forward_backward(w);
    if (w == 1.0) model_.lm().backward();
    if (Adapter* adapter = model_.adapter()) {
      if (soft_)
        soft_->backward(model_.lm(), *adapter, model_.lm().prefix_grad());
      else
        adapter->backward(model_.lm().prefix_grad());
    }
    const int stage = pos_.stage(o_);
    const std::size_t in_stage = stage == 1 ? pos_.step : pos_.step - o_.stage1_steps;
    const double lr = schedule_.lr(in_stage);
    const double norm = opt_.step(model_.parameters(), lr);
    return {loss, norm, lr};
  }

  // The link sentence's weight at the current global step (after link_weight_steps: link_weight_after).
  double link_weight_now() const {
    return o_.link_weight_steps == 0 || pos_.step < o_.link_weight_steps ? o_.link_weight
                                                                         : o_.link_weight_after;
  }

  // The link-weighted objective through the log-prob path: d loss / d log p = -w / sum(w). Returns
  // the unweighted mean cross-entropy, so that the training curve stays comparable across weights.
  double weighted_forward_backward(double link_weight) {
    const std::size_t S = batch_.targets.dim(1);
    logprobs_.resize(Shape{ptrs_.size(), S});
    dlogprobs_.resize(Shape{ptrs_.size(), S});
    forward_logprobs_batch(logprobs_.view());
    double weight_sum = 0, nll = 0;
    std::size_t count = 0;
    for (std::size_t b = 0; b < ptrs_.size(); ++b)
      for (std::size_t pos = 0; pos < S; ++pos) {
        const std::size_t k = b * S + pos;
        dlogprobs_.data()[k] = T(0);
        if (batch_.targets.data()[k] == ops::ignore_index_default) continue;
        const double w = predicts_link(*ptrs_[b], pos) ? link_weight : 1.0;
        dlogprobs_.data()[k] = static_cast<T>(w);
        weight_sum += w, nll -= static_cast<double>(logprobs_.data()[k]), ++count;
      }
    if (weight_sum > 0)
      for (std::size_t k = 0; k < dlogprobs_.numel(); ++k)
        dlogprobs_.data()[k] = static_cast<T>(-static_cast<double>(dlogprobs_.data()[k]) / weight_sum);
    model_.lm().backward_logprobs(dlogprobs_.view());
    return count ? nll / static_cast<double>(count) : 0.0;
  }

  void save_training_checkpoint() {
    const nlohmann::json sft{{"step", pos_.step},
                             {"stage", pos_.stage(o_)},
                             {"data_seed", o_.seed},
                             {"data_epoch", perm_epoch_},
                             {"data_rng_position", data_rng_.position()},
                             {"batch_size", o_.batch_size},
                             {"stage1_steps", o_.stage1_steps},
                             {"soft_tokens_after_bos", o_.soft_tokens_after_bos},
                             {"stage2_steps", o_.stage2_steps}};
    save_checkpoint(checkpoint_path(), model_, &opt_, {{"sft", sft.dump()}});
  }

  using Prompt = SoftPrompt<LM, Adapter>;
  PitchModel<LM, Adapter> model_;
  const Embeddings* cf_;
  std::vector<SftSequence> train_, eval_;
  SftOptions o_;
  std::filesystem::path out_;
  std::optional<Prompt> soft_;
  SftPosition pos_;
  int stage_ready_ = 0;
  AdamW<T> opt_;
  WarmupCosine schedule_;
  SftBatch batch_;
  CpuTensor<T> prefix_, logprobs_, dlogprobs_;
  std::vector<const SftSequence*> ptrs_;
  std::vector<std::size_t> perm_;
  std::size_t perm_epoch_ = static_cast<std::size_t>(-1);
  Rng data_rng_;
};

}  // namespace p4lm::train
