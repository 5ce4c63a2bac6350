#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include <p4lm/data/datasets.hpp>
#include <p4lm/eval/gold_judge.hpp>
#include <p4lm/eval/gold_pitch_file.hpp>
#include <p4lm/eval/gold_validation.hpp>

#include "../data/fixture.hpp"

using namespace p4lm::eval;
namespace fs = std::filesystem;

namespace {

const GoldJudge& judge() {
  static const GoldJudge j = [] {
    const auto& b = p4lm_test::bundle();
    return GoldJudge(b.catalog, heldout_ratings(b.ml, b.split));
  }();
  return j;
}

GoldScores judge_pitch(std::int64_t user, std::int64_t movie, const std::string& text) {
  return judge().score(PitchToJudge{user, movie, text});
}

std::size_t count(const std::vector<MovieClaim>& claims, ClaimKind kind, Verdict verdict) {
  return static_cast<std::size_t>(std::count_if(claims.begin(), claims.end(), [&](const MovieClaim& c) {
    return c.kind == kind && c.verdict == verdict;
  }));
}

const PreferenceClaim& only_claim(const GoldScores& s) {
  REQUIRE(s.personalization.claims.size() == 1);
  return s.personalization.claims[0];
}

// Independent of the judge: user `user_id`'s held-out ratings of movies with `genre`, centred on
// the mean of all their held-out ratings, summed and shrunk by one pseudo-rating.
double heldout_affinity(std::int64_t user_id, const std::string& genre) {
  const auto& b = p4lm_test::bundle();
  const auto u = b.ml.users.at(user_id);
  double sum = 0, n = 0, sum_g = 0, n_g = 0;
  for (std::size_t k = 0; k < b.split.test.size(); ++k)
    if (b.split.test.user[k] == u) sum += b.split.test.rating[k], ++n;
  const double mean = sum / n;
  for (std::size_t k = 0; k < b.split.test.size(); ++k)
    if (b.split.test.user[k] == u && b.catalog.at(b.split.test.item[k]).has_genre(genre))
      sum_g += b.split.test.rating[k] - mean, ++n_g;
  return sum_g / (n_g + 1);
}

// The first user (by id) with a genre rated well above their held-out mean and one well below, each
// on at least 4 held-out movies: found from the split, so the test holds whatever the split draws.
struct Taste {
  std::int64_t user_id = 0;
  std::string liked, disliked;
};
const Taste& taste_user() {
  static const Taste t = [] {
    const auto& b = p4lm_test::bundle();
    for (const auto user_id : b.ml.users.ids()) {
      const auto u = b.ml.users.at(user_id);
      Taste found{user_id, {}, {}};
      for (const auto& g : b.catalog.genres()) {
        std::size_t n = 0;
        for (std::size_t k = 0; k < b.split.test.size(); ++k)
          n += b.split.test.user[k] == u && b.catalog.at(b.split.test.item[k]).has_genre(g);
        if (n < 4 || g.front() == '(') continue;
        const double h = heldout_affinity(user_id, g);
        if (h >= 0.5 && found.liked.empty()) found.liked = g;
        if (h <= -0.5 && found.disliked.empty()) found.disliked = g;
      }
      if (!found.liked.empty() && !found.disliked.empty()) return found;
    }
    FAIL("no user with a clear held-out like and dislike");
    return Taste{};
  }();
  return t;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

// Movie 318 is The Shawshank Redemption (1994), Crime|Drama, tagged "prison"; movie 1 is Toy Story.
TEST_CASE("gold precision: right title, year and genres are supported", "[gold]") {
  const auto s = judge_pitch(1, 318, "The Shawshank Redemption (1994) is a gripping crime and drama film.");
  const auto& c = s.precision.claims;
  CHECK(count(c, ClaimKind::title, Verdict::supported) == 1);
  CHECK(count(c, ClaimKind::year, Verdict::supported) == 1);
  CHECK(count(c, ClaimKind::genre, Verdict::supported) == 2);
  CHECK(s.precision.contradicted == 0);
  CHECK(s.precision.score == 1.0);
}

TEST_CASE("gold precision: a wrong year or genre is contradicted", "[gold]") {
  const auto s = judge_pitch(1, 318, "The Shawshank Redemption (1997) is a drama.");
  CHECK(count(s.precision.claims, ClaimKind::year, Verdict::contradicted) == 1);
  CHECK(s.precision.supported == 2);  // title, drama
  CHECK(s.precision.score == Approx(2.0 / 3.0));

  const auto bare = judge_pitch(1, 318, "Released in 1990, The Shawshank Redemption is a horror film.");
  CHECK(count(bare.precision.claims, ClaimKind::year, Verdict::contradicted) == 1);
  CHECK(count(bare.precision.claims, ClaimKind::genre, Verdict::contradicted) == 1);
  CHECK(bare.precision.score == Approx(1.0 / 3.0));
}

TEST_CASE("gold precision: another movie's plot, title or tag is a hallucination", "[gold]") {
  const std::string own =
      "During his long stretch in prison, Dufresne comes to be admired by the other inmates -- including an "
      "older prisoner named Red -- for his integrity and unquenchable sense of hope.";
  const std::string toy_story =
      "Led by Woody, Andy's toys live happily in his room until Andy's birthday brings Buzz Lightyear onto "
      "the scene.";
  const auto good = judge_pitch(1, 318, "The story: " + own);
  REQUIRE(good.precision.claims.size() == 1);
  CHECK(good.precision.claims[0].verdict == Verdict::supported);
  CHECK(good.precision.claims[0].fact_id == "m318/ov/1");

  const auto bad = judge_pitch(1, 318, "The Shawshank Redemption is a drama. The story: " + toy_story);
  CHECK(count(bad.precision.claims, ClaimKind::plot, Verdict::contradicted) == 1);
  const auto plot = std::find_if(bad.precision.claims.begin(), bad.precision.claims.end(),
                                 [](const MovieClaim& c) { return c.kind == ClaimKind::plot; });
  CHECK(plot->other_movie_id == 1);
  CHECK(plot->fact_id == "m1/ov/0");
  CHECK(bad.precision.score == Approx(2.0 / 3.0));

  // A paraphrase (some words changed) still belongs to Toy Story.
  const auto paraphrase = judge_pitch(
      1, 318,
      "Led by Woody, Andy's toys live happily in his bedroom until his birthday brings Buzz Lightyear.");
  CHECK(count(paraphrase.precision.claims, ClaimKind::plot, Verdict::contradicted) == 1);

  const auto title = judge_pitch(1, 318, "Toy Story (1995) is a drama.");
  CHECK(count(title.precision.claims, ClaimKind::title, Verdict::contradicted) == 1);

  const auto tags = judge_pitch(1, 318, "Its tags say it all: \"prison\" and \"pixar\".");
  CHECK(count(tags.precision.claims, ClaimKind::tag, Verdict::supported) == 1);
  CHECK(count(tags.precision.claims, ClaimKind::tag, Verdict::contradicted) == 1);
  // A period inside a quoted tag does not end the sentence (nor hide the tag).
  const auto dotted =
      judge_pitch(1, 318, "Viewers tag it \"prison\" and \"S.E. Hinton\", and they are right.");
  CHECK(count(dotted.precision.claims, ClaimKind::tag, Verdict::contradicted) == 1);

  // No checkable statement: nothing false was said.
  const auto none = judge_pitch(1, 318, "Trust us on this one.");
  CHECK(none.precision.claims.empty());
  CHECK(none.precision.score == 1.0);
}

TEST_CASE("gold personalization: likes checked against held-out ratings", "[gold]") {
  const auto& t = taste_user();
  const double liked_h = heldout_affinity(t.user_id, t.liked),
               disliked_h = heldout_affinity(t.user_id, t.disliked);
  const auto liked_words = p4lm::data::genre_words(t.liked),
             disliked_words = p4lm::data::genre_words(t.disliked);
  INFO("user " << t.user_id << " likes " << t.liked << " (" << liked_h << "), dislikes " << t.disliked << " ("
               << disliked_h << ")");

  const auto liked =
      judge_pitch(t.user_id, 318, "Since you love " + liked_words + ", this one is right up your alley.");
  const auto& l = only_claim(liked);
  CHECK(l.term == t.liked);
  CHECK(l.stance == Stance::likes);
  CHECK(l.affinity == Approx(liked_h));
  CHECK(l.verdict == Verdict::supported);
  CHECK(liked.personalization.score == Approx(std::clamp(0.5 + liked_h / 2, 0.0, 1.0)));

  const auto wrong = judge_pitch(t.user_id, 318, "It lines up with your love of " + disliked_words + ".");
  CHECK(only_claim(wrong).verdict == Verdict::contradicted);
  CHECK(wrong.personalization.score == Approx(std::clamp(0.5 + disliked_h / 2, 0.0, 1.0)));
  CHECK(wrong.personalization.score < liked.personalization.score);

  const auto dislike =
      judge_pitch(t.user_id, 318, "You dislike " + disliked_words + ", but this one is different.");
  CHECK(only_claim(dislike).stance == Stance::dislikes);
  CHECK(only_claim(dislike).verdict == Verdict::supported);
  CHECK(dislike.personalization.score == Approx(std::clamp(0.5 - disliked_h / 2, 0.0, 1.0)));

  // Genre words about the movie are precision claims, not statements about the user.
  const auto movie = judge_pitch(t.user_id, 318, "The Shawshank Redemption is a crime drama.");
  CHECK(movie.personalization.claims.empty());
  CHECK(movie.personalization.score == 0.0);  // nothing personal: the generic pitch
}

TEST_CASE("gold personalization: favourite titles", "[gold]") {
  const auto& held = judge().heldout();
  std::int64_t stranger = 0;  // a user who never rated Toy Story (movie 1)
  for (std::int64_t u = 1; !stranger; ++u)
    if (held.find(u) && held.find(u)->rated.count(1) == 0) stranger = u;
  const auto never = judge_pitch(stranger, 318, "If you loved Toy Story (1995), this belongs on your list.");
  CHECK(only_claim(never).verdict == Verdict::contradicted);
  CHECK(never.personalization.score == 0.0);

  // A movie user 1 rated in training: not evidence either way (the profile was built from it).
  const auto& b = p4lm_test::bundle();
  const auto u1 = b.ml.users.at(1);
  std::int64_t train_movie = 0;
  for (std::size_t k = 0; k < b.split.train.size() && !train_movie; ++k)
    if (b.split.train.user[k] == u1) train_movie = b.catalog.at(b.split.train.item[k]).movie_id;
  REQUIRE(held.find(1)->rating_of(train_movie) == nullptr);
  const auto& fav = b.catalog.by_movie_id(train_movie);
  const auto trained =
      judge_pitch(1, 318, "If you loved " + fav.title_with_year() + ", this belongs on your list.");
  CHECK(only_claim(trained).term == std::to_string(train_movie));
  CHECK(only_claim(trained).verdict == Verdict::no_evidence);
  CHECK(trained.personalization.score == 0.5);
}

TEST_CASE("gold fluency: non-words, repeated n-grams, length", "[gold]") {
  const auto clean = judge().fluency("The Shawshank Redemption is a gripping prison drama about hope.");
  CHECK(clean.unknown.empty());
  CHECK(clean.repeated_ngram_share == 0.0);

  const auto nonsense = judge().fluency("The Shawshank Redemption is a zorblax film.");
  REQUIRE(nonsense.unknown == std::vector<std::string>{"zorblax"});
  CHECK(nonsense.words == 7);
  CHECK(nonsense.unknown_share == Approx(1.0 / 7.0));
  CHECK(nonsense.length_factor == Approx(7.0 / 20.0));
  CHECK(nonsense.score == Approx((6.0 / 7.0) * (7.0 / 20.0)));

  // 9 words, 7 trigrams, 3 distinct: 4 repeats.
  const auto loop = judge().fluency("a great film a great film a great film");
  CHECK(loop.repeated_ngram_share == Approx(4.0 / 7.0));

  std::string long_text;
  for (int k = 0; k < 300; ++k) long_text += "word" + std::to_string(k % 7) + " prison ";
  CHECK(judge().fluency(long_text).length_factor == 0.0);  // 600 words > 2 * 150
}

TEST_CASE("gold judge: bad input is an error naming the field", "[gold]") {
  CHECK_THROWS_WITH(judge_pitch(1, 318, "  "), Catch::Contains("pitch") && Catch::Contains("empty"));
  CHECK_THROWS_WITH(judge_pitch(1, 999999999, "A film."), Catch::Contains("movie_id"));
  CHECK_THROWS_WITH(judge_pitch(999999, 318, "A film."), Catch::Contains("user_id"));

  p4lm_test::TempDir dir("gold_bad");
  const auto file = dir.path / "pitches.jsonl";
  auto expect = [&](const std::string& second_line, const std::string& field) {
    write_text(file, "{\"user_id\":1,\"movie_id\":318,\"pitch\":\"A prison drama.\"}\n" + second_line + "\n");
    try {
      score_pitch_file(judge(), file, dir.path / "out.jsonl");
      FAIL("no error for " << second_line);
    } catch (const p4lm::ParseError& e) {
      CHECK(e.line() == 2);
      CHECK(e.field() == field);
      CHECK(e.file() == file);
    }
    CHECK_FALSE(fs::exists(dir.path / "out.jsonl"));  // nothing half-written
  };
  expect("{\"user_id\":1,\"movie_id\":318}", "pitch");
  expect("{\"movie_id\":318,\"pitch\":\"x\"}", "user_id");
  expect("{\"user_id\":1,\"movie_id\":\"318\",\"pitch\":\"x\"}", "movie_id");
  expect("{\"user_id\":1,\"movie_id\":318,\"pitch\":\"\"}", "pitch");
  expect("{\"user_id\":1,\"movie_id\":123456789,\"pitch\":\"x\"}", "movie_id");
  expect("{\"user_id\":987654,\"movie_id\":318,\"pitch\":\"x\"}", "user_id");
}

TEST_CASE("gold judge: pitch file gets gold fields; metrics and JSON", "[gold]") {
  p4lm_test::TempDir dir("gold_file");
  const auto& t = taste_user();
  nlohmann::json line{{"user_id", t.user_id},
                      {"movie_id", 318},
                      {"pitch", "The Shawshank Redemption (1994) is a drama. Since you love " +
                                    p4lm::data::genre_words(t.liked) + ", press play."},
                      {"extra", 7}};
  write_text(dir.path / "in.jsonl", line.dump() + "\n");
  const auto scores = score_pitch_file(judge(), dir.path / "in.jsonl", dir.path / "out.jsonl");
  REQUIRE(scores.size() == 1);
  const auto lines = p4lm::io::read_jsonl(dir.path / "out.jsonl");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].at("extra") == 7);
  CHECK(lines[0].at("gold").at("precision").at("score") == scores[0].precision.score);
  CHECK(lines[0].at("gold").at("personalization").at("claims").at(0).at("term") == t.liked);
  const auto m = gold_metrics(scores[0]);
  CHECK(m.at("gold/precision") == 1.0);
  CHECK(m.count("gold/personalization") == 1);
  CHECK(m.count("gold/fluency") == 1);
  const auto summary = gold_summary(scores);
  CHECK(summary.at("gold/precision/mean") == 1.0);
  CHECK(summary.at("gold/precision/std") == 0.0);
  // Batched scoring is the per-pitch scoring, in order.
  const std::vector<PitchToJudge> batch{{t.user_id, 318, "A drama."},
                                        {1, 1, "Toy Story (1995) is a comedy."}};
  const auto many = judge().score(batch);
  REQUIRE(many.size() == 2);
  CHECK(nlohmann::json(many[1]) == nlohmann::json(judge().score(batch[1])));
}

TEST_CASE("gold judge: held-out ratings of a build are those of its CF split", "[gold]") {
  const auto& b = p4lm_test::bundle();
  p4lm_test::TempDir dir("gold_config");
  write_text(dir.path / "config.json",
             R"({"data": "", "split": "holdout", "test_fraction": 0.2, "test_k": 5, "split_seed": 1})");
  const auto from_config = heldout_ratings_of_build(dir.path);
  const auto direct = heldout_ratings(b.ml, b.split);
  REQUIRE(from_config.users() == direct.users());
  for (std::int64_t u : {1, 20, 414, 610}) {
    CHECK(from_config.find(u)->ratings == direct.find(u)->ratings);
    CHECK(from_config.find(u)->rated == direct.find(u)->rated);
  }
  write_text(dir.path / "config.json", R"({"data": "", "split": "holdout"})");
  CHECK_THROWS_AS(heldout_ratings_of_build(dir.path), p4lm::ParseError);
}

// On the teacher's pairs of a small build (100 users, every pitch defective so that there are many
// pairs). Thresholds from the measurement on the full bundled build (docs/rewards.md): precision pairs
// 1.000 on both val and test users there, so 0.97 leaves room for a small sample; off-preference 0.676
// (val) and 0.714 (test) there (0.620 and 0.691 under the split's earlier random stream), because
// held-out ratings often disagree with the training profile's dislikes, so only "clearly better than
// a coin" is asserted, at 0.55 (about 3 standard errors of a 500-pair sample below the lowest of
// those); a generic pitch says nothing about the user and never scores above the clean one (they tie
// when the clean pitch's evidenced claims all score 0: 0.995 on the test users).
TEST_CASE("gold judge: pair accuracy on the teacher's labelled pitches", "[gold][validation]") {
  const auto& b = p4lm_test::bundle();
  constexpr std::size_t kUsers = 100;
  const auto train = p4lm_test::first_users(b.split.train, kUsers);
  const auto test = p4lm_test::first_users(b.split.test, kUsers);
  const auto profiles = p4lm::data::build_profiles(train, b.catalog, b.ml.users);
  p4lm::data::DatasetOptions o;
  o.seed = 5;
  o.pitches_per_user = 20;
  o.val_users = 0.0;
  o.test_users = 0.5;
  o.defect_rate = 1.0;
  o.stats_pairs = 100;
  o.full_catalog = false;
  p4lm_test::TempDir dir("gold_validation");
  p4lm::data::build_datasets({b.catalog, profiles, train, test, nullptr}, o, dir.path, false);
  // The build's held-out pairs are held out by the split its config.json names, and not by another.
  write_text(dir.path / "config.json",
             R"({"data": "", "split": "holdout", "test_fraction": 0.2, "split_seed": 1})");
  CHECK(heldout_ratings_of_build(dir.path).users() == judge().heldout().users());
  write_text(dir.path / "config.json",
             R"({"data": "", "split": "holdout", "test_fraction": 0.2, "split_seed": 2})");
  CHECK_THROWS_AS(heldout_ratings_of_build(dir.path), p4lm::ParseError);

  const auto v = validate_gold_judge(judge(), dir.path, "test");
  INFO(v.table());
  REQUIRE(v.rows.size() == 5);
  const auto& pitches = v.rows[0];
  const auto& sentences = v.rows[1];
  const auto& off = v.rows[2];
  const auto& generic = v.rows[4];
  CHECK(pitches.n >= 100);
  CHECK(pitches.accuracy() >= 0.97);
  CHECK(sentences.n >= 300);
  CHECK(sentences.accuracy() >= 0.97);
  CHECK(off.n >= 100);
  CHECK(off.accuracy() >= 0.55);
  CHECK(generic.defective_above == 0);
  CHECK(generic.accuracy() >= 0.97);
  CHECK(v.hallucinated_caught == v.hallucinated);
}

TEST_CASE("gold judge: the dictionary without the bundled overview file", "[gold]") {
  const auto& b = p4lm_test::bundle();
  // "popcorn" is in none of the catalog's 6,581 overviews but in data/plots/tmdb_overviews.csv.
  GoldOptions catalog_only;
  catalog_only.overviews_csv = fs::path();
  const GoldJudge small(b.catalog, heldout_ratings(b.ml, b.split), catalog_only);
  REQUIRE(small.dictionary_sources().size() == 1);
  CHECK_FALSE(small.lexicon().knows("popcorn"));
  CHECK(small.fluency("Grab some popcorn.").unknown == std::vector<std::string>{"popcorn"});
  GoldOptions bad;
  bad.plot_match = 0;
  CHECK_THROWS_AS(GoldJudge(b.catalog, heldout_ratings(b.ml, b.split), bad), p4lm::InvalidArgument);
  REQUIRE(judge().dictionary_sources().size() == 2);
  CHECK(judge().lexicon().knows("popcorn"));
  CHECK(judge().lexicon().knows("Befriended"));  // "befriend" + "ed", any case
  CHECK_FALSE(judge().lexicon().knows("xqzt"));
}

TEST_CASE("gold judge: catalog.jsonl reads back into the catalog it was written from", "[gold]") {
  const auto& b = p4lm_test::bundle();
  p4lm_test::TempDir dir("gold_catalog");
  const auto path = dir.path / "catalog.jsonl";
  std::string lines;
  for (std::int64_t id : {1, 318, 2571})
    lines += p4lm::data::catalog_json(b.catalog.by_movie_id(id)).dump() + "\n";
  write_text(path, lines);
  const auto read = read_catalog(path);
  REQUIRE(read.size() == 3);
  for (std::int64_t id : {1, 318, 2571}) {
    const auto& a = b.catalog.by_movie_id(id);
    const auto& r = read.by_movie_id(id);
    CHECK(r.title == a.title);
    CHECK(r.year == a.year);
    CHECK(r.genres == a.genres);
    CHECK(r.overview_sentences == a.overview_sentences);
    REQUIRE(r.facts.size() == a.facts.size());
    for (std::size_t k = 0; k < a.facts.size(); ++k) CHECK(r.facts[k].id == a.facts[k].id);
    CHECK(r.tags.size() == a.tags.size());
  }
  write_text(path, lines + "{\"movie_id\": 5, \"title\": \"x\"}\n");
  try {
    read_catalog(path);
    FAIL("no error for a line without year");
  } catch (const p4lm::ParseError& e) {
    CHECK(e.line() == 4);
    CHECK(e.field() == "year");
  }
}
