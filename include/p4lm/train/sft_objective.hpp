#pragma once
// SFT of the pitch model as an Objective of the shared Trainer (train/trainer.hpp): the data order,
// the (link-weighted) next-token loss on the pitch tokens, the stages' freezing and parameter
// groups, and the held-out evaluation with the shuffled-users control. SftTrainer (train/sft.hpp)
// puts it on the Trainer with the two stages as phases.
//
// Batches: step g reads the sequences at flat data positions g·B .. g·B + B - 1; epoch e of the data
// is a Fisher-Yates permutation drawn from Rng(seed, e), so the order is a pure function of (seed,
// step) and a resumed run sees the same batches. Data parallel (docs/distributed.md): on N ranks of
// batch B, rank r reads positions (g·N + r)·B .. + B - 1 of global step g (the one-process order of
// batch N·B split by rank), the link weight follows the global step, and checkpoints record the
// global batch N·B, so a run resumes on any number of ranks that keeps it. The loss is the mean cross-entropy
// over pitch tokens; with link_weight != 1 the link sentence's tokens weigh more (through the log-prob path:
// d loss / d log p = -w / sum(w)), and the reported loss stays the unweighted mean.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/shard.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/train/concepts.hpp"
#include "p4lm/train/pitch_model.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/soft_prompt.hpp"

namespace p4lm::train {

struct SftOptions {
  std::size_t batch_size = 16;
  std::size_t stage1_steps = 100;  // adapters only, transformer frozen (0: single-stage ablation)
  std::size_t stage2_steps = 400;  // everything (or the top train_top_layers blocks, see below)
  // Stage 2 trains the adapters, the top N transformer blocks and the final norm; the lower blocks
  // and the embeddings stay frozen (no weight gradients, no optimizer state, not in checkpoints).
  // 0 (or N >= the model's blocks): everything.
  std::size_t train_top_layers = 0;
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

  // The eval_metrics record: eval_loss, eval_link_loss (+ *_shuffled_users with the control); the
  // Trainer adds the stage.
  std::map<std::string, double> fields() const {
    std::map<std::string, double> f{{"eval_loss", real.loss}, {"eval_link_loss", real.link_loss}};
    if (shuffled.tokens) {
      f["eval_loss_shuffled_users"] = shuffled.loss;
      f["eval_link_loss_shuffled_users"] = shuffled.link_loss;
    }
    return f;
  }
  std::map<std::string, double> fields(int stage) const {
    auto f = fields();
    f["stage"] = stage;
    return f;
  }
};

template <class LM, class Adapter>
class SftObjective {
 public:
  using T = typename LM::value_type;
  using Model = PitchModel<LM, Adapter>;
  using Embeddings = cf::Embeddings<Adapter::dim>;
  using View = TensorView<backend::cpu, T>;
  struct Batch {
    std::size_t step;
    std::vector<const SftSequence*> seqs;
  };

  // CF conditioning: adapter and cf given. Text conditioning: both null (no prefix, one stage).
  SftObjective(const LM& lm, const Adapter* adapter, const Embeddings* cf, std::vector<SftSequence> train,
               std::vector<SftSequence> eval, const SftOptions& options)
      : cf_(cf), train_(std::move(train)), eval_(std::move(eval)), o_(options), with_adapter_(adapter) {
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

  const SftOptions& options() const noexcept { return o_; }
  // Positions before the text: [BOS, soft tokens] (soft_prompt.hpp), the bare soft tokens (the
  // before-BOS ablation), or none (text conditioning).
  std::size_t prefix_len() const noexcept {
    return soft_ ? Prompt::length : with_adapter_ ? Adapter::prefix_length : 0;
  }
  bool bos_in_prefix() const noexcept { return soft_.has_value(); }
  // Stage of phase p: stage 1 (adapters only) exists only with stage1_steps > 0.
  int stage_of_phase(std::size_t p) const noexcept { return p == 0 && o_.stage1_steps > 0 ? 1 : 2; }

  // ---- the Objective interface ----

  // This rank's batch of global step `step` (the Trainer passes its shard; see the file comment).
  Batch batch(std::size_t step, std::size_t micro, const dist::Shard& shard) {
    if (micro != 0)
      fail<InvalidArgument>("SftTrainer: one batch of batch_size sequences per step (no micro-batches)");
    Batch b{step, std::vector<const SftSequence*>(o_.batch_size)};
    const std::size_t first = shard.batch_step(step) * o_.batch_size;
    for (std::size_t k = 0; k < o_.batch_size; ++k) b.seqs[k] = &train_[example_at(first + k)];
    return b;
  }
  // The batch of step `step` on one process.
  Batch batch(std::size_t step, std::size_t micro) { return batch(step, micro, dist::Shard{}); }

  // The ranks the Trainer runs on: checkpoints record the global batch (batch_size × ranks).
  void set_communicator(const dist::Communicator& c) { ranks_ = static_cast<std::size_t>(c.size()); }

  StepLoss loss(Model& model, const Batch& b) {
    batch_.build(b.seqs, prefix_len(), bos_in_prefix());
    const double w = link_weight_at(b.step);
    double weight_sum = static_cast<double>(batch_.counted);  // what the gradient is a mean over
    const double loss = w == 1.0 ? static_cast<double>(model.lm().forward(batch_input(model)))
                                 : weighted_forward_backward(model, b.seqs, w, weight_sum);
    if (w == 1.0) model.lm().backward();
    if (Adapter* adapter = model.adapter()) {
      if (soft_)
        soft_->backward(model.lm(), *adapter, model.lm().prefix_grad());
      else
        adapter->backward(model.lm().prefix_grad());
    }
    // The ranks' batches hold different numbers of pitch tokens: the Trainer weighs them by weight.
    return {loss, batch_.counted, weight_sum};
  }

  void begin_phase(Model& model, std::size_t p) { model.set_stage(stage_of_phase(p), o_.train_top_layers); }

  // Stage 2 may step the adapters at their own learning rate: the LM is pretrained and wants a gentle
  // rate, the adapters are young and learn too slowly at it (docs/results.md, third pass).
  void configure_optimizer(AdamW<T>& opt, std::size_t p) {
    if (stage_of_phase(p) == 2 && with_adapter_ && o_.stage2_adapter_lr > 0)
      opt.scale_lr("adapter.*", o_.stage2_adapter_lr / o_.stage2_lr);
  }

  // The periodic held-out evaluation (the first eval_examples sequences); with CF conditioning also
  // the shuffled-users control, so the metrics show when (and whether) the model reads the user.
  std::map<std::string, double> evaluate(Model& model) {
    if (eval_.empty()) return {};
    return evaluate_record(model).fields();
  }
  SftEvalRecord evaluate_record(Model& model) {
    const std::size_t n = o_.eval_examples ? std::min(o_.eval_examples, eval_.size()) : eval_.size();
    const std::span<const SftSequence> seqs(eval_.data(), n);
    SftEvalRecord r{.real = evaluate_split(model, seqs), .shuffled = {}};
    if (with_adapter_) r.shuffled = evaluate_split(model, seqs, true, o_.seed);
    return r;
  }
  bool has_eval() const noexcept { return !eval_.empty(); }

  // The data order's position: a pure function of (seed, step); saved for inspection and checked.
  // batch_size is the global batch (batch_size × ranks).
  nlohmann::json state() const {
    return {{"data_seed", o_.seed},
            {"data_epoch", perm_epoch_},
            {"data_rng_position", data_rng_.position()},
            {"batch_size", global_batch()}};
  }
  void load_state(const nlohmann::json& s) {
    if (s.is_object() &&
        (s.value("data_seed", o_.seed) != o_.seed || s.value("batch_size", global_batch()) != global_batch()))
      fail<InvalidArgument>("SftTrainer: checkpoint's data order (seed ", s.value("data_seed", o_.seed),
                            ", global batch ", s.value("batch_size", global_batch()),
                            ") differs from this run's (seed ", o_.seed, ", global batch ", global_batch(),
                            ")");
  }

  // ---- evaluation ----

  // Whether batch position `pos` predicts a token of the sequence's link sentence.
  bool predicts_link(const SftSequence& q, std::size_t pos) const {
    const std::size_t predicted = pos - prefix_len() + 1 + (bos_in_prefix() ? 1 : 0);  // index in q.ids
    return predicted >= q.link_begin && predicted < q.link_end;
  }

  // Mean cross-entropy per pitch token over `seqs` (the model's current parameters), overall and
  // split into the link sentence (where the pitch depends on the user) and the rest. With
  // shuffle_users, each sequence gets the CF embedding of a random OTHER user (seeded): the control
  // that tells whether the adapters use who the user is.
  SftLoss evaluate_split(Model& model, std::span<const SftSequence> seqs, bool shuffle_users = false,
                         std::uint64_t shuffle_seed = 7) {
    SftLoss out;
    if (seqs.empty()) return out;
    if (shuffle_users && !model.adapter())
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
      model.lm().forward_logprobs(batch_input(model), logprobs_.view());
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

 private:
  using Prompt = SoftPrompt<LM, Adapter>;

  std::size_t global_batch() const noexcept { return o_.batch_size * ranks_; }

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

  // The link sentence's weight at global step `step` (after link_weight_steps: link_weight_after).
  double link_weight_at(std::size_t step) const {
    return o_.link_weight_steps == 0 || step < o_.link_weight_steps ? o_.link_weight : o_.link_weight_after;
  }

  LMInput<T> batch_input(Model& model) {
    LM& lm = model.lm();
    LMInput<T> in{
        .ids = batch_.ids.view(), .targets = batch_.targets.view(), .lengths = batch_.lengths.view()};
    if (Adapter* adapter = model.adapter()) {
      prefix_.resize(Shape{batch_.users.size(), prefix_len(), lm.config().d_model});
      if (soft_)
        soft_->forward(prefix_.view(), lm, *adapter, *cf_, batch_.users, batch_.items);
      else
        adapter->forward(prefix_.view(), *cf_, batch_.users, batch_.items);
      in.prefix = prefix_.view();
    }
    return in;
  }

  // The link-weighted objective through the log-prob path: d loss / d log p = -w / sum(w). Returns
  // the unweighted mean cross-entropy, so that the training curve stays comparable across weights.
  double weighted_forward_backward(Model& model, const std::vector<const SftSequence*>& seqs,
                                   double link_weight, double& weight_total) {
    const std::size_t S = batch_.targets.dim(1);
    logprobs_.resize(Shape{seqs.size(), S});
    dlogprobs_.resize(Shape{seqs.size(), S});
    model.lm().forward_logprobs(batch_input(model), logprobs_.view());
    double weight_sum = 0, nll = 0;
    std::size_t count = 0;
    for (std::size_t b = 0; b < seqs.size(); ++b)
      for (std::size_t pos = 0; pos < S; ++pos) {
        const std::size_t k = b * S + pos;
        dlogprobs_.data()[k] = T(0);
        if (batch_.targets.data()[k] == ops::ignore_index_default) continue;
        const double w = predicts_link(*seqs[b], pos) ? link_weight : 1.0;
        dlogprobs_.data()[k] = static_cast<T>(w);
        weight_sum += w, nll -= static_cast<double>(logprobs_.data()[k]), ++count;
      }
    if (weight_sum > 0)
      for (std::size_t k = 0; k < dlogprobs_.numel(); ++k)
        dlogprobs_.data()[k] = static_cast<T>(-static_cast<double>(dlogprobs_.data()[k]) / weight_sum);
    model.lm().backward_logprobs(dlogprobs_.view());
    weight_total = weight_sum;
    return count ? nll / static_cast<double>(count) : 0.0;
  }

  const Embeddings* cf_;
  std::vector<SftSequence> train_, eval_;
  SftOptions o_;
  bool with_adapter_;
  std::optional<Prompt> soft_;
  SftBatch batch_;
  CpuTensor<T> prefix_, logprobs_, dlogprobs_;
  std::vector<std::size_t> perm_;
  std::size_t perm_epoch_ = static_cast<std::size_t>(-1);
  Rng data_rng_;
  std::size_t ranks_ = 1;
};

}  // namespace p4lm::train
