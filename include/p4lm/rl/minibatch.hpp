#pragma once
// One optimisation pass over some rows of a rollout: the policy's forward (log-probs of the sampled
// tokens, values from the value head on the same hidden states) and the backward from per-token
// gradients into the LM, the prefix producer and the value head. PPO and the policy gradient share it.
//
//   rl::MinibatchPass<Policy> pass;
//   pass.forward(policy, &head, rollout, rows);        // pass.logprobs(), pass.values(): (n, R)
//   pass.backward(policy, &head, dlogprobs, dvalues);   // gradients accumulate

#include <cstddef>
#include <span>

#include "p4lm/core/tensor.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/value_head.hpp"

namespace p4lm::rl {

template <Policy P>
class MinibatchPass {
 public:
  using T = typename P::value_type;
  using View = TensorView<backend::cpu, T>;

  void forward(P& policy, const ValueHead<T>* head, const Rollout<T>& r, std::span<const std::size_t> rows) {
    batch_.build(r, rows);
    const std::size_t n = rows.size(), S = batch_.positions(), R = r.response_len, Pn = r.prefix_len;
    View prefix{};
    if (Pn) {
      prefix_.resize(Shape{n, Pn, policy.lm().config().d_model});
      policy.write_prefix(prefix_.view(), batch_.keys());
      prefix = prefix_.view();
    }
    pos_.resize(Shape{n, S});
    policy.lm().forward_logprobs(batch_.input(prefix), pos_.view());
    logprobs_.resize(Shape{n, R});
    batch_.gather(logprobs_.view(), pos_.view());
    values_.resize(Shape{n, R}, T(0));
    if (head) {
      head->forward(pos_.view(), policy.lm().hidden());
      batch_.gather(values_.view(), pos_.view());
    }
  }

  // dlogprobs (n, R); dvalues (n, R) or {} (no value head). Accumulates every gradient.
  void backward(P& policy, ValueHead<T>* head, const View& dlogprobs, const View& dvalues) {
    const std::size_t n = batch_.rows().size(), S = batch_.positions();
    dpos_.resize(Shape{n, S});
    batch_.scatter(dpos_.view(), dlogprobs);
    View dhidden{};
    if (head && dvalues.data()) {
      dvpos_.resize(Shape{n, S});
      batch_.scatter(dvpos_.view(), dvalues);
      dhidden_.resize(Shape{n, S, head->d_model()});
      head->backward(dhidden_.view(), dvpos_.view(), policy.lm().hidden());
      dhidden = dhidden_.view();
    }
    policy.lm().backward_logprobs(dpos_.view(), dhidden);
    if (policy.prefix_length()) policy.backward_prefix(policy.lm().prefix_grad(), batch_.keys());
  }

  View logprobs() noexcept { return logprobs_.view(); }
  View values() noexcept { return values_.view(); }
  const SequenceBatch<T>& batch() const noexcept { return batch_; }

 private:
  SequenceBatch<T> batch_;
  CpuTensor<T> prefix_, pos_, logprobs_, values_, dpos_, dvpos_, dhidden_;
};

}  // namespace p4lm::rl
