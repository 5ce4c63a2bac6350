#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <p4lm/eval/agreement.hpp>

using namespace p4lm::eval;

namespace {

// scipy.stats.spearmanr / rankdata on five columns pairs (scripts/fixtures/make_spearman_fixture.py).
const nlohmann::json& agreement_fixture() {
  static const nlohmann::json j = [] {
    const std::filesystem::path file =
        std::filesystem::path(P4LM_TEST_FIXTURES_DIR) / "eval" / "spearman.json";
    std::ifstream in(file);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

std::vector<double> agreement_column(const nlohmann::json& c, const char* key) {
  return c.at(key).get<std::vector<double>>();
}

}  // namespace

TEST_CASE("average ranks and Spearman's rho match scipy, ties included", "[agreement]") {
  const auto& cases = agreement_fixture().at("cases");
  REQUIRE(cases.size() == 5);
  for (const auto& c : cases) {
    INFO(c.at("name").get<std::string>());
    const auto x = agreement_column(c, "x"), y = agreement_column(c, "y");
    CHECK(average_ranks(x) == agreement_column(c, "x_ranks"));  // halves are exact in double
    CHECK(average_ranks(y) == agreement_column(c, "y_ranks"));
    const auto rho = spearman(x, y);
    REQUIRE(rho.value);
    CHECK(rho.undefined.empty());
    CHECK(*rho.value == Approx(c.at("rho").get<double>()).margin(1e-12));
  }
}

TEST_CASE("Spearman's rho is invariant to monotone transforms and flips with a decreasing one",
          "[agreement]") {
  const auto& c = agreement_fixture().at("cases").at(0);
  const auto x = agreement_column(c, "x"), y = agreement_column(c, "y");
  std::vector<double> ex, neg;
  for (double v : x) ex.push_back(std::exp(3 * v)), neg.push_back(-v);
  CHECK(*spearman(ex, y).value == Approx(*spearman(x, y).value).margin(1e-12));
  CHECK(*spearman(neg, y).value == Approx(-*spearman(x, y).value).margin(1e-12));
  CHECK(*spearman(x, x).value == Approx(1.0).margin(1e-15));
}

TEST_CASE("an undefined correlation says why instead of returning NaN", "[agreement]") {
  const std::vector<double> x{0.2, 0.9, 0.4, 0.1}, flat{0.5, 0.5, 0.5, 0.5};
  const auto a = spearman(x, flat, "appeal", "gold/fluency");
  CHECK_FALSE(a.value);
  CHECK(a.undefined == "gold/fluency is constant");
  CHECK(spearman(flat, x, "appeal", "gold/fluency").undefined == "appeal is constant");
  const std::vector<double> one{1.0};
  CHECK(spearman(one, one).undefined == "fewer than 2 pitches");
  CHECK_FALSE(bootstrap_spearman(x, flat));

  const std::vector<double> three{1, 2, 3}, nan{1, std::nan(""), 3};
  CHECK_THROWS_WITH(spearman(x, three), Catch::Contains("columns of 4 and 3 values"));
  CHECK_THROWS_WITH(spearman(three, nan), Catch::Contains("value 1 is not a finite number"));
}

TEST_CASE("the bootstrap interval is a function of the seed and holds the estimate", "[agreement]") {
  for (const std::size_t k : {std::size_t{0}, std::size_t{3}}) {  // continuous; gold-like ties
    const auto& c = agreement_fixture().at("cases").at(k);
    INFO(c.at("name").get<std::string>());
    const auto x = agreement_column(c, "x"), y = agreement_column(c, "y");
    const BootstrapOptions o{.resamples = 500, .seed = 7};
    const auto a = bootstrap_spearman(x, y, o), b = bootstrap_spearman(x, y, o);
    const auto other = bootstrap_spearman(x, y, {.resamples = 500, .seed = 8});
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(other);
    CHECK(a->low == b->low);
    CHECK(a->high == b->high);
    CHECK((other->low != a->low || other->high != a->high));
    CHECK(a->resamples == 500);
    const double rho = *spearman(x, y).value;
    CHECK(a->low <= rho);
    CHECK(rho <= a->high);
    CHECK(a->low >= -1);
    CHECK(a->high <= 1);
    CHECK(a->high - a->low > 0.05);  // 25-60 pitches cannot pin rho down
    // A wider level gives a wider interval from the same resamples.
    const auto wide = bootstrap_spearman(x, y, {.resamples = 500, .seed = 7, .level = 0.99});
    CHECK(wide->low <= a->low);
    CHECK(wide->high >= a->high);
  }
  // More pitches, a narrower interval: the same relation on 400 pitches instead of 25.
  std::vector<double> x, y;
  p4lm::Rng rng(3, 0);
  for (int i = 0; i < 400; ++i) {
    x.push_back(rng.uniform());
    y.push_back(x.back() + rng.uniform());
  }
  const auto many = bootstrap_spearman(x, y, {.resamples = 300});
  const auto few = bootstrap_spearman(std::span(x).first(25), std::span(y).first(25), {.resamples = 300});
  CHECK(many->high - many->low < few->high - few->low);
}

TEST_CASE("agreement rows pair each reward with its gold dimension", "[agreement]") {
  const std::map<std::string, std::vector<double>> rewards{
      {"precision", {0.9, 0.1, 0.5, 0.7}}, {"appeal", {1, 2, 3, 4}}, {"personalization", {-3, -1, 2, 0}}};
  const std::map<std::string, std::vector<double>> gold{{"gold/precision", {1, 0, 0.5, 1}},
                                                        {"gold/fluency", {0.4, 0.3, 0.2, 0.1}},
                                                        {"gold/personalization", {0, 0, 0, 0}}};
  const BootstrapOptions o{.resamples = 50};
  const auto rows = agreement_rows("teacher test", rewards, gold, o);
  REQUIRE(rows.size() == 3);  // preference_relevance was not scored
  CHECK(rows[0].reward == "precision");
  CHECK(rows[0].gold == "gold/precision");
  CHECK(rows[0].n == 4);
  CHECK(*rows[0].rho.value == Approx(*spearman(rewards.at("precision"), gold.at("gold/precision")).value));
  CHECK(rows[1].reward == "appeal");
  CHECK(rows[1].gold == "gold/fluency");
  CHECK(*rows[1].rho.value == Approx(-1.0));
  CHECK(rows[2].gold == "gold/personalization");
  CHECK_FALSE(rows[2].rho.value);
  CHECK_FALSE(rows[2].ci);

  const auto text = format_agreement(rows, o);
  CHECK_THAT(text, Catch::Contains("n/a  (gold/personalization is constant)"));
  CHECK_THAT(text, Catch::Contains("50 resamples, seed 1"));
  CHECK_THAT(text, !Catch::Contains("nan"));
  const auto j = agreement_json(rows, o);
  CHECK(j.at("rows").at(2).at("rho").is_null());
  CHECK(j.at("rows").at(2).at("undefined") == "gold/personalization is constant");
  CHECK(j.at("rows").at(1).at("ci").size() == 2);
  CHECK(j.at("resamples") == 50);
}
