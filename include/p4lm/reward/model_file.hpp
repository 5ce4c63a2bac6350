#pragma once
// A reward head on disk: safetensors with the head's tensors and metadata format=p4lm.reward,
// type=<reward name>, cf_width=<Dim or 0>, encoder=<the frozen encoder's folder name>, hidden=<width>.
// Loading a file of another reward type or CF width, or without the metadata a reward expects (how its
// features are built: a file from a version that built them otherwise), is one ParseError naming the
// file and the field.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/reward/head.hpp"

namespace p4lm::reward {

inline void save_head(const std::filesystem::path& path, std::string_view type, std::size_t cf_width,
                      const MlpHead<float>& head, std::map<std::string, std::string> metadata = {}) {
  metadata["format"] = "p4lm.reward";
  metadata["type"] = std::string(type);
  metadata["cf_width"] = std::to_string(cf_width);
  metadata["in"] = std::to_string(head.in());
  metadata["hidden"] = std::to_string(head.hidden());
  metadata["out"] = std::to_string(head.out());
  std::vector<io::SafetensorsEntry> t;
  for (const auto& p : head.parameters()) {
    std::vector<std::int64_t> shape;
    for (std::size_t d = 0; d < p.value.shape().rank(); ++d)
      shape.push_back(std::int64_t(p.value.shape()[d]));
    t.push_back(io::tensor_f32(p.name, shape, std::span<const float>(p.value.data(), p.value.numel())));
  }
  io::save_safetensors(path, t, metadata);
}

inline MlpHead<float> load_head(const std::filesystem::path& path, std::string_view type,
                                std::size_t cf_width, const std::map<std::string, std::string>& expect = {}) {
  const auto f = io::SafetensorsFile::open(path);
  const auto& m = f.metadata();
  const auto get = [&](const std::string& k) -> std::string {
    const auto it = m.find(k);
    if (it == m.end())
      throw ParseError(path, 0, k, "missing from __metadata__: not a p4lm reward model file");
    return it->second;
  };
  if (get("format") != "p4lm.reward") throw ParseError(path, 0, "format", "not a p4lm reward model file");
  if (get("type") != type)
    throw ParseError(path, 0, "type",
                     "this is a '" + get("type") + "' reward model, expected '" + std::string(type) + "'");
  if (get("cf_width") != std::to_string(cf_width))
    throw ParseError(
        path, 0, "cf_width",
        "the model was trained for CF width " + get("cf_width") + ", expected " + std::to_string(cf_width));
  for (const auto& [k, v] : expect)
    if (const auto it = m.find(k); it == m.end() || it->second != v)
      throw ParseError(path, 0, k,
                       (it == m.end() ? std::string("missing") : "'" + it->second + "'") + ", expected '" +
                           v + "': the head was trained on other features; retrain it (p4lm rewards train)");
  MlpHead<float> head(std::stoul(get("in")), std::stoul(get("hidden")), std::stoul(get("out")));
  for (auto& p : head.parameters()) {
    const auto v = f.read_f32(p.name);
    if (v.size() != p.value.numel()) throw ParseError(path, 0, p.name, "wrong size");
    std::copy(v.begin(), v.end(), p.value.data());
  }
  return head;
}

}  // namespace p4lm::reward
