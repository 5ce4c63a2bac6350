// libtorch peer of bench_lm_train (issue 5, "Benchmarks"): the same GPT-2 124M training step
// (random init, vocab 50257, 12 layers, 12 heads, width 768, context 1024, tied LM head, float32),
// written with torch::nn / torch::Tensor: forward, backward (autograd), torch::optim::AdamW step.
// Same flags, warmup/steps, tokens/s definition (B*T per mean step time) and --json keys as
// benchmarks/lm_train.cpp. Built only when CMake finds libtorch (benchmarks/CMakeLists.txt); CI does
// not need it. Threads: torch::set_num_threads(OMP_NUM_THREADS), one inter-op thread.
// Allocator: libtorch's CPU allocator calls malloc/free for every tensor of every step; glibc serves
// blocks over 32 MB (logits, the embedding gradient) by mmap and returns them at free, so each step
// page-faults and zeroes them again. As is usual for CPU training with torch (jemalloc/tcmalloc or the
// same mallopt settings), the benchmark keeps freed memory in the heap: mallopt(M_MMAP_MAX, 0) and
// mallopt(M_TRIM_THRESHOLD, 1 << 30). --default-malloc leaves glibc's defaults.
//
//   env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 bench_lm_train_torch --seq 64 --json

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include <malloc.h>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "lm_train_args.hpp"

#include "p4lm/backend/cpu/blas.hpp"  // openblas_get_corename: libtorch here calls the same OpenBLAS

namespace {

struct BlockImpl : torch::nn::Module {
  BlockImpl(std::int64_t C, std::int64_t H)
      : n_head(H),
        ln_1(register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(1e-5)))),
        c_attn(register_module("c_attn", torch::nn::Linear(C, 3 * C))),
        attn_proj(register_module("attn_proj", torch::nn::Linear(C, C))),
        ln_2(register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(1e-5)))),
        c_fc(register_module("c_fc", torch::nn::Linear(C, 4 * C))),
        mlp_proj(register_module("mlp_proj", torch::nn::Linear(4 * C, C))) {}

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask) {
    const auto B = x.size(0), T = x.size(1), C = x.size(2), hs = C / n_head;
    auto qkv = c_attn(ln_1(x)).split(C, /*dim=*/2);
    auto q = qkv[0].view({B, T, n_head, hs}).transpose(1, 2);  // (B, H, T, hs)
    auto k = qkv[1].view({B, T, n_head, hs}).transpose(1, 2);
    auto v = qkv[2].view({B, T, n_head, hs}).transpose(1, 2);
    auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hs)));
    att = torch::softmax(att.masked_fill(causal_mask, -std::numeric_limits<float>::infinity()), -1);
    auto y = torch::matmul(att, v).transpose(1, 2).contiguous().view({B, T, C});
    auto h = x + attn_proj(y);
    return h + mlp_proj(torch::gelu(c_fc(ln_2(h)), "tanh"));
  }

  std::int64_t n_head;
  torch::nn::LayerNorm ln_1;
  torch::nn::Linear c_attn, attn_proj;
  torch::nn::LayerNorm ln_2;
  torch::nn::Linear c_fc, mlp_proj;
};
TORCH_MODULE(Block);

struct GPT2Impl : torch::nn::Module {
  GPT2Impl(std::int64_t vocab, std::int64_t max_seq, std::int64_t layers, std::int64_t C, std::int64_t H)
      : wte(register_module("wte", torch::nn::Embedding(vocab, C))),
        wpe(register_module("wpe", torch::nn::Embedding(max_seq, C))),
        ln_f(register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(1e-5)))) {
    for (std::int64_t l = 0; l < layers; ++l)
      blocks.push_back(register_module("h" + std::to_string(l), Block(C, H)));
    // Same scheme as CausalLM::init_random: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)),
    // biases 0, LayerNorm gains 1.
    torch::NoGradGuard no_grad;
    const double std_ = 0.02, proj_std = std_ / std::sqrt(2.0 * static_cast<double>(layers));
    wte->weight.normal_(0.0, std_);
    wpe->weight.normal_(0.0, std_);
    for (auto& b : blocks) {
      for (auto* lin : {&b->c_attn, &b->attn_proj, &b->c_fc, &b->mlp_proj}) {
        const bool proj = lin == &b->attn_proj || lin == &b->mlp_proj;
        (*lin)->weight.normal_(0.0, proj ? proj_std : std_);
        (*lin)->bias.zero_();
      }
    }
  }

  // Mean cross-entropy of next-token targets; the LM head is the token embedding (tied).
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& targets) {
    const auto T = ids.size(1);
    auto pos = torch::arange(T, torch::kLong);
    auto x = wte(ids) + wpe(pos);
    auto mask = torch::ones({T, T}, torch::kBool).triu(1);
    for (auto& b : blocks) x = b->forward(x, mask);
    auto logits = torch::matmul(ln_f(x), wte->weight.t());  // (B, T, V)
    return torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), targets.view({-1}));
  }

  torch::nn::Embedding wte, wpe;
  std::vector<Block> blocks;
  torch::nn::LayerNorm ln_f;
};
TORCH_MODULE(GPT2);

}  // namespace

int main(int argc, char** argv) {
  LmTrainArgs args;
  bool default_malloc = false;
  if (!args.parse(
          argc, argv,
          "usage: bench_lm_train_torch [--batch 4] [--seq 64] [--steps 5] [--warmup 1] [--layers 12] "
          "[--width 768] [--vocab 50257] [--arch gpt2] [--json] [--default-malloc]",
          [&](const std::string& flag) { return flag == "--default-malloc" && (default_malloc = true); }))
    return 2;
  const std::size_t B = args.batch, T = args.seq, steps = args.steps, warmup = args.warmup,
                    layers = args.layers, width = args.width, vocab = args.vocab;
  const std::string arch = args.arch;
  const bool json = args.json;
  if (arch != "gpt2") {
    std::cerr << "bench_lm_train_torch: only --arch gpt2 has a libtorch peer\n";
    return 2;
  }
  if (!default_malloc) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  int threads = 1;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env != nullptr && std::atoi(env) > 0)
    threads = std::atoi(env);
  torch::set_num_threads(threads);
  torch::set_num_interop_threads(1);
  torch::manual_seed(1);

  const auto V = static_cast<std::int64_t>(vocab);
  GPT2 model(V, 1024, static_cast<std::int64_t>(layers), static_cast<std::int64_t>(width),
             static_cast<std::int64_t>(width / 64));
  std::int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  torch::optim::AdamW opt(
      model->parameters(),
      torch::optim::AdamWOptions(1e-4).betas(std::make_tuple(0.9, 0.95)).eps(1e-8).weight_decay(0.0));
  const auto shape = std::vector<std::int64_t>{static_cast<std::int64_t>(B), static_cast<std::int64_t>(T)};
  const auto ids = torch::randint(V, shape, torch::kLong);
  const auto targets = torch::randint(V, shape, torch::kLong);

  double seconds = 0, loss = 0;
  for (std::size_t s = 0; s < warmup + steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    auto l = model->forward(ids, targets);
    l.backward();
    opt.step();
    loss = l.item<double>();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) seconds += dt;
  }
  const double step_s = seconds / static_cast<double>(steps);
  const double tps = static_cast<double>(B * T) / step_s;
  if (json) {
    std::cout << nlohmann::json{{"benchmark", "lm_train_torch"},
                                {"arch", arch},
                                {"params", params},
                                {"batch", B},
                                {"seq", T},
                                {"steps", steps},
                                {"step_s", step_s},
                                {"tokens_per_s", tps},
                                {"loss", loss},
                                {"torch_threads", torch::get_num_threads()},
                                {"torch_version", TORCH_VERSION},
                                {"default_malloc", default_malloc},
                                {"blas_threads", openblas_get_num_threads()},
                                {"openblas_core", openblas_get_corename()}}
                     .dump()
              << '\n';
  } else {
    std::cout << "libtorch " << TORCH_VERSION << " " << arch << " " << params << " params, B=" << B
              << " T=" << T << ": " << step_s << " s/step, " << tps << " tokens/s (loss " << loss
              << "; OpenBLAS core " << openblas_get_corename() << ", " << torch::get_num_threads()
              << " torch threads)\n";
  }
  return 0;
}
