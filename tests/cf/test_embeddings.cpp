#include <catch2/catch.hpp>

#include <filesystem>

#include <p4lm/cf/embeddings.hpp>

namespace fs = std::filesystem;
using namespace p4lm::cf;

TEST_CASE("Embeddings<Dim>: predict, score_items, shape checks", "[cf][embeddings]") {
  Embeddings<2> e(2, 3);
  e.global_mean = 3.0f;
  e.users = {{1.0f, 2.0f}, {0.0f, -1.0f}};
  e.items = {{1.0f, 0.0f}, {0.5f, 0.5f}, {0.0f, 1.0f}};
  e.user_bias = {0.5f, -0.5f};
  e.item_bias = {0.1f, 0.2f, 0.3f};
  CHECK(e.predict(0, 2) == Approx(3.0 + 0.5 + 0.3 + 2.0));
  std::vector<float> scores(3);
  e.score_items(1, scores);
  CHECK(scores == std::vector<float>{0.1f, 0.2f - 0.5f, 0.3f - 1.0f});
  e.check();
  e.item_bias = {0.0f};
  CHECK_THROWS_AS(e.check(), p4lm::ShapeError);
}

TEST_CASE("Embeddings save/load round trip through safetensors", "[cf][embeddings]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_embeddings";
  fs::remove_all(dir);
  Embeddings<3> e(2, 4);
  for (std::size_t k = 0; k < e.users.size(); ++k) e.users.data()[k] = 0.25f * static_cast<float>(k);
  for (std::size_t k = 0; k < e.items.size(); ++k) e.items.data()[k] = -0.5f * static_cast<float>(k);
  e.user_bias = {1.0f, 2.0f};
  e.item_bias = {0.1f, 0.2f, 0.3f, 0.4f};
  e.global_mean = 3.5f;
  e.user_ids = {10, 20};
  e.item_ids = {1, 2, 3, 5};
  e.metadata["model"] = "als";
  const auto path = dir / "cf.safetensors";
  save_embeddings(e, path);
  CHECK(embeddings_dim(path) == 3);
  const auto back = load_embeddings<3>(path);
  CHECK(back.users == e.users);
  CHECK(back.items == e.items);
  CHECK(back.user_bias == e.user_bias);
  CHECK(back.item_bias == e.item_bias);
  CHECK(back.global_mean == 3.5f);
  CHECK(back.user_ids == e.user_ids);
  CHECK(back.item_ids == e.item_ids);
  CHECK(back.metadata == e.metadata);
  // The width is part of the type: loading as another Dim is a ShapeError naming the tensor.
  CHECK_THROWS_WITH(load_embeddings<4>(path), Catch::Contains("user_factors") && Catch::Contains("[2, 4]"));
  // Invalid embeddings are refused before anything is written.
  e.user_ids = {1};
  CHECK_THROWS_AS(save_embeddings(e, dir / "bad.safetensors"), p4lm::ShapeError);
  CHECK_FALSE(fs::exists(dir / "bad.safetensors"));
  fs::remove_all(dir);
}

TEST_CASE("DimList picks the compiled width and names the others", "[cf][embeddings]") {
  using Dims = DimList<16, 32>;
  CHECK(Dims::contains(32));
  CHECK_FALSE(Dims::contains(8));
  CHECK(Dims::visit(16, [](auto d) { return decltype(d)::value * 2; }) == 32);
  CHECK(Dims::visit(32, [](auto d) { return decltype(d)::value * 2; }) == 64);
  try {
    Dims::visit<p4lm::UsageError>(
        8, [](auto d) { return decltype(d)::value; }, "--dim");
    FAIL("width 8 was accepted");
  } catch (const p4lm::UsageError& e) {
    CHECK(std::string(e.what()).find("--dim 8 is not supported (compiled widths: 16, 32)") !=
          std::string::npos);
  }
  CHECK_THROWS_AS(Dims::visit(0, [](auto d) { return decltype(d)::value; }), p4lm::InvalidArgument);
}
