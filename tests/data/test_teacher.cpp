#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>

#include <p4lm/data/teacher.hpp>

#include "fixture.hpp"

using namespace p4lm::data;
using p4lm::Rng;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains(const std::string& text, const std::string& word) {
  return lower(text).find(lower(word)) != std::string::npos;
}

// Plans for the first users' training movies: every (user, movie, plan) the checks below run on.
struct Case {
  const UserProfile* profile;
  PitchPlan plan;
};

std::vector<Case> cases(const Teacher& teacher, const std::vector<UserProfile>& profiles,
                        std::size_t per_user) {
  const auto& b = p4lm_test::bundle();
  const auto rows = p4lm::cf::by_user(b.split.train);
  std::vector<Case> out;
  for (const auto& p : profiles) {
    Rng rng(11, static_cast<std::uint64_t>(p.user));
    const auto items = rows.cols_of(static_cast<std::size_t>(p.user));
    for (std::size_t k = 0; k < items.size() && k < per_user; ++k)
      out.push_back({&p, teacher.plan(p, items[k], rng)});
  }
  return out;
}

}  // namespace

TEST_CASE("teacher: defect labels are correct by construction", "[data][teacher]") {
  const auto& b = p4lm_test::bundle();
  const auto profiles = build_profiles(p4lm_test::first_users(b.split.train, 40), b.catalog, b.ml.users);
  const Teacher teacher(b.catalog);
  std::map<std::string, std::size_t> checked;
  for (const auto& [profile, plan] : cases(teacher, profiles, 15)) {
    const auto& movie = b.catalog.at(plan.item);
    const Pitch clean = teacher.render(plan);
    // Clean: every claim true, stated facts are the movie's, appeal present, a link unless impossible.
    for (const auto& c : clean.claims()) {
      CHECK(c.supported);
      CHECK(movie.find_fact(c.fact_id) != nullptr);
    }
    CHECK(clean.facts.size() == clean.claims().size());
    CHECK(std::count(clean.appeal.begin(), clean.appeal.end(), "cta") == 1);
    if (clean.has(Defect::generic)) {
      CHECK(plan.link_choice.kind == LinkChoice::Kind::none);
    } else {
      // The tie first, then the user's strongest liked genres it names beside it, each in the text.
      REQUIRE_FALSE(clean.link_terms.empty());
      CHECK(clean.link_terms[0] == plan.link_choice.term());
      const auto& liked = profile->liked_genres;
      std::vector<std::string> expected;
      const std::size_t want = plan.link_choice.kind == LinkChoice::Kind::favourite ? 2 : 1;
      for (const auto& a : liked)
        if (expected.size() < want && "genre:" + a.name != clean.link_terms[0])
          expected.push_back("genre:" + a.name);
      CHECK(std::vector<std::string>(clean.link_terms.begin() + 1, clean.link_terms.end()) == expected);
      for (const auto& a : liked)
        if (std::find(clean.link_terms.begin(), clean.link_terms.end(), "genre:" + a.name) !=
            clean.link_terms.end())
          CHECK(contains(clean.text, genre_words(a.name)));
      if (!liked.empty()) ++checked["clean with taste"];
    }
    ++checked["clean"];

    if (teacher.can_apply(plan, Defect::hallucinated)) {
      const Pitch h = teacher.render(plan, Defect::hallucinated);
      CHECK(h.defects == std::vector<Defect>{Defect::hallucinated});
      std::size_t wrong = 0;
      for (const auto& c : h.claims()) {
        if (c.supported) {
          CHECK(movie.find_fact(c.fact_id) != nullptr);
          continue;
        }
        ++wrong;
        // Borrowed from another movie, and not true of this one.
        CHECK(movie.find_fact(c.fact_id) == nullptr);
        CHECK_FALSE(c.fact_id.starts_with("m" + std::to_string(movie.movie_id) + "/"));
        if (c.kind == FactKind::genre) CHECK_FALSE(movie.has_genre(c.value));
        if (c.kind == FactKind::tag) CHECK_FALSE(movie.has_tag_key(p4lm::data::detail::tag_key(c.value)));
        if (c.kind == FactKind::year) CHECK(std::abs(std::stoi(c.value) - *movie.year) >= 2);
        CHECK(std::find(h.facts.begin(), h.facts.end(), c.fact_id) == h.facts.end());
      }
      CHECK(wrong == 1);
      ++checked["hallucinated"];
    }
    if (teacher.can_apply(plan, Defect::generic)) {
      const Pitch g = teacher.render(plan, Defect::generic);
      CHECK(g.link_terms.empty());
      for (const auto& s : g.sentences) CHECK(s.slot != Slot::link);
      for (auto f : profile->favourites)
        if (f != movie.item) CHECK_FALSE(contains(g.text, b.catalog.at(f).title_with_year()));
      // The teacher's own sentences (not the overview's or the tags' words) address no taste.
      std::string own;
      for (const auto& s : g.sentences)
        if (s.slot != Slot::plot && s.slot != Slot::tags) own += s.text + " ";
      for (const char* phrase : {"you love", "your love", "your taste", "soft spot", "like you", "you enjoy",
                                 "your favourites", "you rated", "top marks", "you loved"})
        CHECK_FALSE(contains(own, phrase));
      CHECK(g.appeal == clean.appeal);  // only the link is gone
      ++checked["generic"];
    }
    if (teacher.can_apply(plan, Defect::off_preference)) {
      const Pitch o = teacher.render(plan, Defect::off_preference);
      REQUIRE(o.link_terms.size() == 1);
      const auto& term = o.link_terms[0];
      bool disliked = false;
      for (const auto& a : profile->disliked_genres)
        if (term == "genre:" + a.name) disliked = contains(o.text, genre_words(a.name));
      for (const auto& a : profile->disliked_tags)
        if (term == "tag:" + a.name) disliked = contains(o.text, "\"" + a.name + "\"");
      CHECK(disliked);
      for (const auto& a : profile->liked_genres) CHECK(term != "genre:" + a.name);
      ++checked["off_preference"];
    }
    {
      const Pitch bl = teacher.render(plan, Defect::bland);
      CHECK(bl.appeal.empty());
      for (const auto& s : bl.sentences) {
        CHECK(s.slot != Slot::hook);
        CHECK(s.slot != Slot::cta);
      }
      const std::string own = lower(movie.title + " " + movie.overview + " " + [&] {
        std::string t;
        for (const auto& x : movie.tags) t += x.display + " ";
        return t;
      }());
      for (const auto& w : vivid_words())
        if (own.find(w) == std::string::npos) CHECK_FALSE(contains(bl.text, w));
      // Same facts as the clean pitch: the appeal pair differs in appeal only.
      CHECK(bl.facts == clean.facts);
      ++checked["bland"];
    }
  }
  for (const char* k : {"clean", "clean with taste", "hallucinated", "generic", "off_preference", "bland"}) {
    INFO(k);
    CHECK(checked[k] >= 100);
  }
}

TEST_CASE("teacher: same plan seed, same pitch; varied wording across pitches", "[data][teacher]") {
  const auto& b = p4lm_test::bundle();
  const auto profiles = build_profiles(p4lm_test::first_users(b.split.train, 20), b.catalog, b.ml.users);
  const Teacher teacher(b.catalog);
  Rng r1(5, 3), r2(5, 3);
  const auto item = b.catalog.by_movie_id(318).item;
  const auto p1 = teacher.write(profiles[0], item, r1), p2 = teacher.write(profiles[0], item, r2);
  CHECK(p1.text == p2.text);
  CHECK(p1.pattern() == p2.pattern());
  std::set<std::string> patterns, texts;
  for (const auto& [profile, plan] : cases(teacher, profiles, 10)) {
    const auto p = teacher.render(plan);
    patterns.insert(p.pattern());
    texts.insert(p.text);
  }
  CHECK(patterns.size() > 150);  // of 200 pitches
  CHECK(texts.size() == 200);
  CHECK(parse_defect("off_preference") == Defect::off_preference);
  CHECK_FALSE(parse_defect("typo").has_value());
}

TEST_CASE("teacher: an impossible defect is refused", "[data][teacher]") {
  const auto& b = p4lm_test::bundle();
  const Teacher teacher(b.catalog);
  UserProfile nobody;  // no likes, no dislikes, no favourites
  Rng rng(1);
  const auto plan = teacher.plan(nobody, b.catalog.by_movie_id(1).item, rng);
  CHECK_FALSE(teacher.can_apply(plan, Defect::off_preference));
  CHECK_FALSE(teacher.can_apply(plan, Defect::generic));
  CHECK_THROWS_AS(teacher.render(plan, Defect::off_preference), p4lm::InvalidArgument);
  // Without any profile link the clean rendering is honestly labelled generic.
  CHECK(teacher.render(plan).defects == std::vector<Defect>{Defect::generic});
}
