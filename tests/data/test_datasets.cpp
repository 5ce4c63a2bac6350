#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <string>

#include <p4lm/data/datasets.hpp>

#include "fixture.hpp"

using namespace p4lm::data;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kUsers = 60;

struct Small {
  p4lm::cf::Ratings train, test;
  std::vector<UserProfile> profiles;
};

const Small& small() {
  static const Small s = [] {
    const auto& b = p4lm_test::bundle();
    Small out;
    out.train = p4lm_test::first_users(b.split.train, kUsers);
    out.test = p4lm_test::first_users(b.split.test, kUsers);
    out.profiles = build_profiles(out.train, b.catalog, b.ml.users);
    return out;
  }();
  return s;
}

DatasetOptions options() {
  DatasetOptions o;
  o.seed = 3;
  o.pitches_per_user = 6;
  o.val_users = 0.2;
  o.test_users = 0.2;
  o.stats_pairs = 2000;
  o.full_catalog = false;  // keeps the tests fast; the CLI writes every movie
  return o;
}

nlohmann::json build(const fs::path& out, const DatasetOptions& o = options(),
                     const ItemTargets* targets = nullptr) {
  const auto& s = small();
  return build_datasets({p4lm_test::bundle().catalog, s.profiles, s.train, s.test, targets}, o, out, false);
}

std::map<std::string, std::string> files_under(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = p4lm::io::read_file(e.path());
  return out;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("split_users: seeded, complete, sized", "[data][datasets]") {
  const auto a = split_users(1000, 0.1, 0.1, 7), b = split_users(1000, 0.1, 0.1, 7),
             c = split_users(1000, 0.1, 0.1, 8);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(std::count(a.begin(), a.end(), UserSplit::test) == 100);
  CHECK(std::count(a.begin(), a.end(), UserSplit::val) == 100);
  CHECK(std::count(a.begin(), a.end(), UserSplit::train) == 800);
  CHECK_THROWS_AS(split_users(10, 0.5, 0.5, 1), p4lm::InvalidArgument);
}

TEST_CASE("build_datasets: same seed, same bytes; another seed, other bytes", "[data][datasets]") {
  p4lm_test::TempDir d1("ds1"), d2("ds2"), d3("ds3");
  build(d1.path);
  build(d2.path);
  auto o = options();
  o.seed = 4;
  build(d3.path, o);
  const auto f1 = files_under(d1.path), f2 = files_under(d2.path), f3 = files_under(d3.path);
  REQUIRE(f1.size() == 20);  // catalog, profiles, stats + 5 kinds x 3 splits + 2 heldout
  for (const auto& [name, bytes] : f1) {
    INFO(name);
    CHECK(f2.at(name) == bytes);
  }
  CHECK(f3.at("sft/train.jsonl") != f1.at("sft/train.jsonl"));
}

TEST_CASE("build_datasets: users never cross splits; profiles are the training ones", "[data][datasets]") {
  p4lm_test::TempDir dir("leak");
  const auto stats = build(dir.path);
  std::map<std::int64_t, std::string> split_of;
  p4lm::io::for_each_jsonl(dir.path / "profiles.jsonl", [&](const nlohmann::json& j, std::size_t) {
    split_of[j.at("user_id").get<std::int64_t>()] = j.at("split").get<std::string>();
  });
  REQUIRE(split_of.size() == kUsers);
  std::map<std::string, std::set<std::int64_t>> users_in;
  for (const char* kind : {"sft", "nli", "appeal", "personalization", "relevance", "heldout"}) {
    for (const char* split : {"train", "val", "test"}) {
      const auto path = dir.path / kind / (std::string(split) + ".jsonl");
      if (!fs::exists(path)) {
        CHECK((std::string(kind) == "heldout" && std::string(split) == "train"));
        continue;
      }
      p4lm::io::for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
        const auto user = j.at("user_id").get<std::int64_t>();
        INFO(kind << "/" << split << ":" << line);
        CHECK(split_of.at(user) == split);
        users_in[split].insert(user);
      });
    }
  }
  for (const char* a : {"train", "val", "test"})
    for (const char* b : {"train", "val", "test"})
      if (std::string(a) < b)
        for (auto u : users_in[a]) CHECK(users_in[b].count(u) == 0);
  CHECK(users_in["test"].size() >= 5);
  // Every SFT pair is a movie the user rated in TRAINING, and its profile text is the training profile.
  const auto& s = small();
  const auto& b = p4lm_test::bundle();
  std::set<std::pair<std::int64_t, std::int64_t>> rated;
  for (std::size_t k = 0; k < s.train.size(); ++k)
    rated.emplace(b.ml.users.id(s.train.user[k]), b.ml.items.id(s.train.item[k]));
  std::map<std::int64_t, std::string> profile_text;
  for (const auto& p : s.profiles) profile_text[p.user_id] = p.text;
  for (const char* split : {"train", "val", "test"})
    for (const auto& e : read_records<SftExample>(dir.path / "sft" / (std::string(split) + ".jsonl"))) {
      CHECK(rated.count({e.user_id, e.movie_id}) == 1);
      CHECK(e.profile == profile_text.at(e.user_id));
    }
  // Held-out pairs come from the held-out ratings only.
  for (const auto& h : read_records<HeldoutPair>(dir.path / "heldout" / "test.jsonl"))
    CHECK(rated.count({h.user_id, h.movie_id}) == 0);
  CHECK(stats["splits"]["test"]["heldout"].get<std::size_t>() > 0);
}

TEST_CASE("build_datasets: defect mix and label structure", "[data][datasets]") {
  p4lm_test::TempDir dir("mix");
  const auto stats = build(dir.path);
  const auto sft = read_records<SftExample>(dir.path / "sft" / "train.jsonl");
  REQUIRE(sft.size() > 150);
  std::size_t defective = 0;
  for (const auto& e : sft) {
    CHECK(e.defects.size() <= 1);
    defective += !e.defects.empty();
    const bool hallucinated = !e.defects.empty() && e.defects[0] == "hallucinated";
    bool any_false = false;
    for (const auto& c : e.claims) any_false |= !c.supported;
    CHECK(any_false == hallucinated);
    if (!e.defects.empty() && e.defects[0] == "bland") CHECK(e.appeal.empty());
    // The link span is one whole sentence of the pitch, present exactly when there is a link.
    CHECK(e.link_span.empty() == e.link_terms.empty());
    if (!e.link_span.empty()) {
      const std::string link = e.pitch.substr(e.link_span[0], e.link_span[1] - e.link_span[0]);
      CHECK((e.link_span[0] == 0 || e.pitch[e.link_span[0] - 1] == ' '));
      CHECK((e.link_span[1] == e.pitch.size() || e.pitch[e.link_span[1]] == ' '));
      CHECK((link.ends_with('.') || link.ends_with('!') || link.ends_with('?')));
    }
  }
  // About a quarter (plus the few users with no possible link, labelled generic).
  const double rate = static_cast<double>(defective) / static_cast<double>(sft.size());
  CHECK(rate > 0.18);
  CHECK(rate < 0.36);
  std::size_t entail = 0, contra = 0;
  for (const auto& p : read_records<NliPair>(dir.path / "nli" / "train.jsonl")) {
    (p.label == "entailment" ? entail : contra)++;
    CHECK(p.premise.starts_with("Title: "));
  }
  CHECK(entail == contra);
  for (const auto& p : read_records<PreferencePair>(dir.path / "appeal" / "train.jsonl")) {
    CHECK(p.loser_defect == "bland");
    CHECK(p.profile.empty());
  }
  for (const auto& p : read_records<PreferencePair>(dir.path / "personalization" / "train.jsonl")) {
    CHECK((p.loser_defect == "generic" || p.loser_defect == "off_preference"));
    CHECK_FALSE(p.profile.empty());
  }
  for (const auto& r : read_records<RelevanceExample>(dir.path / "relevance" / "train.jsonl"))
    CHECK(r.target.empty());
  CHECK(stats["pitch"]["pitches"].get<std::size_t>() > 0);
}

TEST_CASE("build_datasets: relevance targets are the items' CF embeddings", "[data][datasets]") {
  const auto& b = p4lm_test::bundle();
  p4lm::cf::Embeddings<4> e(0, b.ml.items.size());
  for (std::size_t i = 0; i < e.n_items(); ++i)
    for (std::size_t d = 0; d < 4; ++d) e.items(i, d) = static_cast<float>(i) + 0.25f * static_cast<float>(d);
  const auto targets = item_targets(e, b.ml.items);
  p4lm_test::TempDir dir("rel");
  auto o = options();
  o.pitches_per_user = 2;
  const auto stats = build(dir.path, o, &targets);
  CHECK(stats["relevance_targets"] == 4);
  const auto rel = read_records<RelevanceExample>(dir.path / "relevance" / "val.jsonl");
  REQUIRE_FALSE(rel.empty());
  for (const auto& r : rel) {
    const auto item = static_cast<float>(b.ml.items.at(r.movie_id));
    CHECK(r.target == std::vector<float>{item, item + 0.25f, item + 0.5f, item + 0.75f});
  }
}

TEST_CASE("JSONL: every record type round-trips", "[data][datasets]") {
  p4lm_test::TempDir dir("rt");
  const std::vector<SftExample> sft{
      {1,
       318,
       4.5f,
       "The Shawshank Redemption",
       1994,
       {"Crime", "Drama"},
       "Framed.",
       "Loves Drama.",
       "A pitch.",
       {"m318/year/1994"},
       {{"m318/year/1994", "year", "1994", true}, {"m1/genre/Animation", "genre", "Animation", false}},
       {"hallucinated"},
       {"genre:Drama"},
       {"cta"},
       "identity/v1 cta/0",
       {2, 8}},
      {2,
       5,
       3.0f,
       "Untitled",
       std::nullopt,
       {},
       "",
       "",
       "Plain \"quoted\"\nline.",
       {},
       {},
       {},
       {},
       {},
       "",
       {}}};
  write_records(dir.path / "sft.jsonl", sft);
  CHECK(read_records<SftExample>(dir.path / "sft.jsonl") == sft);
  const std::vector<NliPair> nli{
      {1, 2, "Title: X.", "X is a drama.", "entailment", "identity", {"m2/genre/Drama"}},
      {1, 2, "Title: X.", "X is a war film.", "contradiction", "identity", {}}};
  write_records(dir.path / "nli.jsonl", nli);
  CHECK(read_records<NliPair>(dir.path / "nli.jsonl") == nli);
  const std::vector<PreferencePair> pairs{{1, 2, "", "a text", "b text", "b", "bland"},
                                          {1, 2, "Loves Drama.", "a", "b", "a", "generic"}};
  write_records(dir.path / "pairs.jsonl", pairs);
  CHECK(read_records<PreferencePair>(dir.path / "pairs.jsonl") == pairs);
  const std::vector<RelevanceExample> rel{{1, 2, "pitch", {0.5f, -1.25f}}, {1, 3, "pitch", {}}};
  write_records(dir.path / "rel.jsonl", rel);
  CHECK(read_records<RelevanceExample>(dir.path / "rel.jsonl") == rel);
  const std::vector<HeldoutPair> held{{1, 2, 4.5f, "X", 2001, {"Drama"}, "O.", "P."}};
  write_records(dir.path / "held.jsonl", held);
  CHECK(read_records<HeldoutPair>(dir.path / "held.jsonl") == held);
}

TEST_CASE("JSONL: a bad line is an error naming file and line", "[data][datasets]") {
  p4lm_test::TempDir dir("bad");
  const std::string good = R"({"user_id":1,"movie_id":2,"a":"x","b":"y","winner":"a"})";
  auto expect_line = [&](const std::string& text, std::size_t line, const std::string& field) {
    const auto path = dir.path / "pairs.jsonl";
    write_text(path, text);
    try {
      read_records<PreferencePair>(path);
      FAIL("no error");
    } catch (const p4lm::ParseError& e) {
      INFO(e.what());
      CHECK(e.line() == line);
      CHECK(e.field() == field);
      CHECK(std::string(e.what()).find("pairs.jsonl:" + std::to_string(line)) != std::string::npos);
    }
  };
  expect_line(good + "\n" + good + "\n{not json\n", 3, "");  // not JSON
  expect_line(good + "\n\n" + R"({"user_id":1,"movie_id":2,"a":"x","winner":"a"})" + "\n", 3,
              "");  // missing "b"
  expect_line(good + "\n" + R"({"user_id":"one","movie_id":2,"a":"x","b":"y","winner":"a"})", 2,
              "user_id");  // wrong type
  // A fractional id is an error, never truncated (user_id 1.5 was read as 1).
  expect_line(good + "\n" + R"({"user_id":1.5,"movie_id":2,"a":"x","b":"y","winner":"a"})", 2, "user_id");
  expect_line(R"({"user_id":1,"movie_id":2e0,"a":"x","b":"y","winner":"a"})", 1, "movie_id");
  expect_line(R"({"user_id":1,"movie_id":2,"a":"x","b":"y","winner":"c"})", 1, "winner");  // bad value
  const auto path = dir.path / "pairs.jsonl";
  write_text(path, good + "\n" + R"({"user_id":1,"movie_id":2,"a":"x","b":"y","winner":"c"})" + "\n");
  CHECK_THROWS_WITH(read_records<PreferencePair>(path), Catch::Contains("winner"));
  // Integers outside their type are errors, never converted (a year of 1E95 cast to int is undefined).
  const std::string sft_head = R"({"user_id":1,"movie_id":2,"rating":4.5,"title":"Heat",)";
  const std::string sft_tail =
      R"("genres":["Crime"],"overview":"o","profile":"p","pitch":"Heat is great.","facts":[],"claims":[],)"
      R"("defects":[])";
  const auto expect_sft_field = [&](const std::string& year, const std::string& extra,
                                    const std::string& field) {
    write_text(dir.path / "sft.jsonl", sft_head + R"("year":)" + year + "," + sft_tail + extra + "}\n");
    try {
      read_records<SftExample>(dir.path / "sft.jsonl");
      FAIL("no error");
    } catch (const p4lm::ParseError& e) {
      INFO(e.what());
      CHECK(e.field() == field);
    }
  };
  expect_sft_field("1E95", "", "year");
  expect_sft_field("3000000000", "", "year");
  expect_sft_field("1995.5", "", "year");
  expect_sft_field("1995", R"(,"link_span":[-1,4])", "link_span");
  expect_sft_field("1995", R"(,"link_span":[0,1e30])", "link_span");
  write_text(dir.path / "sft.jsonl",
             sft_head + R"("year":null,)" + sft_tail + R"(,"link_span":[0,4]})" + "\n");
  CHECK(read_records<SftExample>(dir.path / "sft.jsonl").at(0).link_span == std::vector<std::size_t>{0, 4});
  write_text(dir.path / "nli.jsonl",
             R"({"user_id":1,"movie_id":2,"premise":"p","hypothesis":"h","label":"neutral"})");
  CHECK_THROWS_AS(read_records<NliPair>(dir.path / "nli.jsonl"), p4lm::ParseError);
}
