#pragma once
// The datasets P4LM learns from, written as JSONL (one record per line, schemas in docs/data.md) so
// pitches and labels written by any LLM can replace the teacher's:
//   sft/<split>.jsonl             SftExample        warm-start (SFT) corpus, mixed quality
//   nli/<split>.jsonl             NliPair           precision reward (entailment / contradiction)
//   appeal/<split>.jsonl          PreferencePair    appeal reward (Bradley-Terry)
//   personalization/<split>.jsonl PreferencePair    personalization reward (BT over profile + pitch)
//   relevance/<split>.jsonl       RelevanceExample  preference-relevance encoder (text -> CF space)
//   heldout/<split>.jsonl         HeldoutPair       val/test users' held-out pairs (evaluation)
//   catalog.jsonl, profiles.jsonl                   the item facts and user profiles used
// Users, not ratings, are split into train/val/test (seeded): a test user's pitches, labels and
// profile never reach a training file.
//
// Which (user, movie) pairs get pitches: movies the user rated in the TRAINING part of the CF split
// (the same ratings the profile is built from), mostly positively rated ones (rating >=
// positive_threshold, positive_share of the pairs), so the corpus resembles pitches for movies the
// user would be recommended, while the held-out ratings stay unseen for evaluation.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/movielens.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/catalog.hpp"
#include "p4lm/data/profile.hpp"
#include "p4lm/data/teacher.hpp"
#include "p4lm/io/jsonl.hpp"

namespace p4lm::data {

enum class UserSplit { train, val, test };
inline constexpr std::array<UserSplit, 3> all_user_splits{UserSplit::train, UserSplit::val, UserSplit::test};

inline const char* to_string(UserSplit s) {
  switch (s) {
    case UserSplit::train:
      return "train";
    case UserSplit::val:
      return "val";
    case UserSplit::test:
      return "test";
  }
  return "?";
}

// Assigns each of n_users to a split: a seeded shuffle, then round(test * n) test users,
// round(val * n) validation users, the rest train. Independent of everything but (n, fractions, seed).
inline std::vector<UserSplit> split_users(std::size_t n_users, double val_fraction, double test_fraction,
                                          std::uint64_t seed) {
  if (!(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1))
    fail<InvalidArgument>("split_users: val ", val_fraction, " + test ", test_fraction, " must be in [0, 1)");
  std::vector<std::size_t> order(n_users);
  for (std::size_t k = 0; k < n_users; ++k) order[k] = k;
  Rng rng(seed, 0x5011ULL);
  for (std::size_t k = n_users; k > 1; --k)
    std::swap(order[k - 1], order[static_cast<std::size_t>(rng.below(k))]);
  const auto n_test = static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(n_users)));
  const auto n_val = static_cast<std::size_t>(std::llround(val_fraction * static_cast<double>(n_users)));
  std::vector<UserSplit> out(n_users, UserSplit::train);
  for (std::size_t k = 0; k < n_users; ++k)
    out[order[k]] = k < n_test ? UserSplit::test : k < n_test + n_val ? UserSplit::val : UserSplit::train;
  return out;
}

// ---- Records ---------------------------------------------------------------------------------------

struct ClaimRecord {
  std::string fact_id, kind, value;
  bool supported = true;
  friend bool operator==(const ClaimRecord&, const ClaimRecord&) = default;
};

// One warm-start example: the prompt parts, the pitch, and what the teacher knows about it.
struct SftExample {
  std::int64_t user_id = 0, movie_id = 0;
  float rating = 0;  // the user's training rating of the movie
  std::string title;
  std::optional<int> year;
  std::vector<std::string> genres;
  std::string overview, profile, pitch;
  std::vector<std::string> facts;    // true facts stated (ids)
  std::vector<ClaimRecord> claims;   // every claim, with supported=false for hallucinations
  std::vector<std::string> defects;  // [] for a clean pitch
  std::vector<std::string> link_terms, appeal;
  std::string pattern;
  // [begin, end) characters of the pitch's link sentence (the part that depends on the user); empty
  // when the pitch has none. Lets training report the loss where personalization happens.
  std::vector<std::size_t> link_span;
  friend bool operator==(const SftExample&, const SftExample&) = default;
};

// Precision-reward example: does the premise support the hypothesis (one pitch sentence)?
struct NliPair {
  std::int64_t user_id = 0, movie_id = 0;
  std::string premise, hypothesis;
  std::string label;  // "entailment" or "contradiction"
  std::string slot;   // the sentence's slot in the pitch (identity, plot, tags, hook, link, cta)
  std::vector<std::string> fact_ids;  // facts the hypothesis states (a foreign id for a hallucination)
  friend bool operator==(const NliPair&, const NliPair&) = default;
};

// Bradley-Terry pair: two pitches of the same movie for the same user; `winner` is "a" or "b".
// Appeal pairs leave `profile` empty; personalization pairs carry it.
struct PreferencePair {
  std::int64_t user_id = 0, movie_id = 0;
  std::string profile, a, b, winner;
  std::string loser_defect;  // what the losing pitch lacks: bland, generic or off_preference
  friend bool operator==(const PreferencePair&, const PreferencePair&) = default;
};

// Preference-relevance example: a (clean) pitch and the CF embedding of its movie, the encoder's
// regression target. `target` is empty (null in JSON) when no CF model was supplied.
struct RelevanceExample {
  std::int64_t user_id = 0, movie_id = 0;
  std::string pitch;
  std::vector<float> target;
  friend bool operator==(const RelevanceExample&, const RelevanceExample&) = default;
};

// A val/test user's held-out positive rating: where the trained policies are evaluated.
struct HeldoutPair {
  std::int64_t user_id = 0, movie_id = 0;
  float rating = 0;
  std::string title;
  std::optional<int> year;
  std::vector<std::string> genres;
  std::string overview, profile;
  friend bool operator==(const HeldoutPair&, const HeldoutPair&) = default;
};

// JSON conversions (found by nlohmann through ADL). Reading uses .at(): a missing field is an error
// that read_records turns into ParseError with the file and line.
namespace detail {
// A record field with a value the schema does not allow; read_records adds file and line.
struct BadField : InvalidArgument {
  BadField(std::string field_name, const std::string& problem)
      : InvalidArgument(problem), field(std::move(field_name)) {}
  std::string field;
};

// An integer field of type T: never a float nlohmann would truncate (user_id 1.5 read as 1) nor one
// outside T (a year of 1E95 converted to int is undefined behaviour).
template <class T>
T integer_from(const nlohmann::json& v, std::string_view key) {
  const bool fits =
      v.is_number_unsigned()
          ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
      : v.is_number_integer()
          ? v.get<std::int64_t>() >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                (std::is_unsigned_v<T> ||
                 v.get<std::int64_t>() <= static_cast<std::int64_t>(std::numeric_limits<T>::max()))
          : false;
  if (!fits)
    throw BadField(std::string(key),
                   "must be an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
                       std::to_string(std::numeric_limits<T>::max()) + "], got " + v.dump());
  return v.get<T>();
}
inline void get_id(const nlohmann::json& j, const char* key, std::int64_t& id) {
  id = integer_from<std::int64_t>(j.at(key), key);
}
inline std::optional<int> optional_integer(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (v.is_null()) return std::nullopt;
  return integer_from<int>(v, key);
}

template <class T>
nlohmann::json optional_json(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
}  // namespace detail

inline void to_json(nlohmann::json& j, const ClaimRecord& c) {
  j = {{"fact_id", c.fact_id}, {"kind", c.kind}, {"value", c.value}, {"supported", c.supported}};
}
inline void from_json(const nlohmann::json& j, ClaimRecord& c) {
  j.at("fact_id").get_to(c.fact_id);
  j.at("kind").get_to(c.kind);
  j.at("value").get_to(c.value);
  j.at("supported").get_to(c.supported);
}
inline void to_json(nlohmann::json& j, const SftExample& e) {
  j = {{"user_id", e.user_id},
       {"movie_id", e.movie_id},
       {"rating", e.rating},
       {"title", e.title},
       {"year", detail::optional_json(e.year)},
       {"genres", e.genres},
       {"overview", e.overview},
       {"profile", e.profile},
       {"pitch", e.pitch},
       {"facts", e.facts},
       {"claims", e.claims},
       {"defects", e.defects},
       {"link_terms", e.link_terms},
       {"appeal", e.appeal},
       {"pattern", e.pattern}};
  if (!e.link_span.empty()) j["link_span"] = e.link_span;
}
inline void from_json(const nlohmann::json& j, SftExample& e) {
  detail::get_id(j, "user_id", e.user_id);
  detail::get_id(j, "movie_id", e.movie_id);
  j.at("rating").get_to(e.rating);
  j.at("title").get_to(e.title);
  e.year = detail::optional_integer(j, "year");
  j.at("genres").get_to(e.genres);
  j.at("overview").get_to(e.overview);
  j.at("profile").get_to(e.profile);
  j.at("pitch").get_to(e.pitch);
  j.at("facts").get_to(e.facts);
  j.at("claims").get_to(e.claims);
  j.at("defects").get_to(e.defects);
  // Optional for pitches written by other tools.
  e.link_terms = j.value("link_terms", std::vector<std::string>{});
  e.appeal = j.value("appeal", std::vector<std::string>{});
  e.pattern = j.value("pattern", std::string{});
  e.link_span.clear();
  if (const auto it = j.find("link_span"); it != j.end()) {
    if (!it->is_array()) throw detail::BadField("link_span", "must be an array, got " + it->dump());
    for (const auto& v : *it) e.link_span.push_back(detail::integer_from<std::size_t>(v, "link_span"));
  }
  if (!e.link_span.empty() &&
      (e.link_span.size() != 2 || e.link_span[0] > e.link_span[1] || e.link_span[1] > e.pitch.size()))
    fail<InvalidArgument>("link_span must be [begin, end) inside the pitch (", e.pitch.size(),
                          " characters)");
}
inline void to_json(nlohmann::json& j, const NliPair& p) {
  j = {{"user_id", p.user_id},       {"movie_id", p.movie_id}, {"premise", p.premise},
       {"hypothesis", p.hypothesis}, {"label", p.label},       {"slot", p.slot},
       {"fact_ids", p.fact_ids}};
}
inline void from_json(const nlohmann::json& j, NliPair& p) {
  detail::get_id(j, "user_id", p.user_id);
  detail::get_id(j, "movie_id", p.movie_id);
  j.at("premise").get_to(p.premise);
  j.at("hypothesis").get_to(p.hypothesis);
  j.at("label").get_to(p.label);
  if (p.label != "entailment" && p.label != "contradiction")
    throw detail::BadField("label", "must be entailment or contradiction, got '" + p.label + "'");
  p.slot = j.value("slot", std::string{});
  p.fact_ids = j.value("fact_ids", std::vector<std::string>{});
}
inline void to_json(nlohmann::json& j, const PreferencePair& p) {
  j = {{"user_id", p.user_id}, {"movie_id", p.movie_id},        {"a", p.a}, {"b", p.b},
       {"winner", p.winner},   {"loser_defect", p.loser_defect}};
  if (!p.profile.empty()) j["profile"] = p.profile;
}
inline void from_json(const nlohmann::json& j, PreferencePair& p) {
  detail::get_id(j, "user_id", p.user_id);
  detail::get_id(j, "movie_id", p.movie_id);
  j.at("a").get_to(p.a);
  j.at("b").get_to(p.b);
  j.at("winner").get_to(p.winner);
  if (p.winner != "a" && p.winner != "b")
    throw detail::BadField("winner", "must be \"a\" or \"b\", got '" + p.winner + "'");
  p.profile = j.value("profile", std::string{});
  p.loser_defect = j.value("loser_defect", std::string{});
}
inline void to_json(nlohmann::json& j, const RelevanceExample& r) {
  j = {{"user_id", r.user_id}, {"movie_id", r.movie_id}, {"pitch", r.pitch}};
  j["target"] = r.target.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.target);
}
inline void from_json(const nlohmann::json& j, RelevanceExample& r) {
  detail::get_id(j, "user_id", r.user_id);
  detail::get_id(j, "movie_id", r.movie_id);
  j.at("pitch").get_to(r.pitch);
  r.target.clear();
  if (j.contains("target") && !j.at("target").is_null()) j.at("target").get_to(r.target);
}
inline void to_json(nlohmann::json& j, const HeldoutPair& h) {
  j = {{"user_id", h.user_id},
       {"movie_id", h.movie_id},
       {"rating", h.rating},
       {"title", h.title},
       {"year", detail::optional_json(h.year)},
       {"genres", h.genres},
       {"overview", h.overview},
       {"profile", h.profile}};
}
inline void from_json(const nlohmann::json& j, HeldoutPair& h) {
  detail::get_id(j, "user_id", h.user_id);
  detail::get_id(j, "movie_id", h.movie_id);
  j.at("rating").get_to(h.rating);
  j.at("title").get_to(h.title);
  h.year = detail::optional_integer(j, "year");
  j.at("genres").get_to(h.genres);
  j.at("overview").get_to(h.overview);
  j.at("profile").get_to(h.profile);
}

inline nlohmann::json catalog_json(const CatalogItem& c) {
  nlohmann::json tags = nlohmann::json::array(), facts = nlohmann::json::array();
  for (const auto& t : c.tags) tags.push_back({{"tag", t.display}, {"key", t.key}, {"count", t.count}});
  for (const auto& f : c.facts)
    facts.push_back({{"id", f.id}, {"kind", to_string(f.kind)}, {"value", f.value}});
  return {{"movie_id", c.movie_id},
          {"title", c.title},
          {"original_title", c.original_title},
          {"year", detail::optional_json(c.year)},
          {"genres", c.genres},
          {"tags", tags},
          {"overview", c.overview},
          {"facts", facts}};
}

inline nlohmann::json profile_json(const UserProfile& p, const Catalog& catalog, UserSplit split) {
  auto affinities = [](const std::vector<Affinity>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : list)
      out.push_back({{"name", a.name}, {"score", std::round(a.score * 1000.0) / 1000.0}, {"count", a.count}});
    return out;
  };
  std::vector<std::int64_t> favourites;
  for (auto i : p.favourites) favourites.push_back(catalog.at(i).movie_id);
  return {{"user_id", p.user_id},
          {"split", to_string(split)},
          {"n_ratings", p.n_ratings},
          {"mean_rating", std::round(p.mean_rating * 1000.0) / 1000.0},
          {"liked_genres", affinities(p.liked_genres)},
          {"disliked_genres", affinities(p.disliked_genres)},
          {"liked_tags", affinities(p.liked_tags)},
          {"disliked_tags", affinities(p.disliked_tags)},
          {"favourites", favourites},
          {"text", p.text}};
}

// Reads a JSONL file of T (any record type above); a malformed line or record throws ParseError with
// the file and line number (io::for_each_jsonl).
template <class T>
std::vector<T> read_records(const std::filesystem::path& path) {
  std::vector<T> out;
  io::for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
    try {
      out.push_back(j.get<T>());
    } catch (const detail::BadField& e) {
      throw ParseError(path, line, e.field, e.what());
    }
  });
  return out;
}

template <class T>
void write_records(const std::filesystem::path& path, const std::vector<T>& records) {
  io::write_jsonl_with(path, [&](auto&& emit) {
    for (const auto& r : records) emit(nlohmann::json(r));
  });
}

// ---- Building --------------------------------------------------------------------------------------

// Relevance targets: one CF item embedding per catalog item (row-major [n_items, dim]).
struct ItemTargets {
  int dim = 0;
  std::vector<float> values;
  std::vector<char> present;  // whether the CF model knows the item
  std::vector<float> of(cf::Index item) const {
    const auto i = static_cast<std::size_t>(item);
    if (i >= present.size() || !present[i]) return {};
    return {values.begin() + static_cast<std::ptrdiff_t>(i * dim),
            values.begin() + static_cast<std::ptrdiff_t>((i + 1) * dim)};
  }
};

// Maps a CF model's item factors onto the catalog's items (through item_ids when the file has them,
// else index for index).
template <int Dim>
ItemTargets item_targets(const cf::Embeddings<Dim>& e, const cf::IdMap& items) {
  ItemTargets t;
  t.dim = Dim;
  t.values.assign(items.size() * Dim, 0.0f);
  t.present.assign(items.size(), 0);
  for (std::size_t row = 0; row < e.n_items(); ++row) {
    std::optional<cf::Index> item;
    if (!e.item_ids.empty())
      item = items.find(e.item_ids[row]);
    else if (row < items.size())
      item = static_cast<cf::Index>(row);
    if (!item) continue;
    const auto src = e.item(static_cast<cf::Index>(row));
    std::copy(src.begin(), src.end(), t.values.begin() + static_cast<std::ptrdiff_t>(*item) * Dim);
    t.present[static_cast<std::size_t>(*item)] = 1;
  }
  return t;
}

struct DatasetOptions {
  std::uint64_t seed = 1;
  double val_users = 0.1, test_users = 0.1;  // fractions of users
  std::size_t pitches_per_user = 20;         // at most; fewer if the user rated fewer eligible movies
  double defect_rate = 0.25;                 // share of SFT pitches that carry one defect
  // Relative weights of hallucinated, generic, off_preference, bland among defective pitches
  // (renormalised over the defects a pitch can carry).
  std::array<double, 4> defect_weights{1.0, 1.0, 1.0, 1.0};
  float positive_threshold = 4.0f;   // a training rating this high is "positive"
  double positive_share = 0.8;       // share of a user's pitched movies that are positives (when available)
  bool require_overview = true;      // pitch only movies with an overview (a plot to be factual about)
  float heldout_threshold = 4.0f;    // held-out ratings this high become evaluation pairs
  std::size_t stats_pairs = 100000;  // random pitch pairs sampled for the pattern-sharing statistics
  bool full_catalog = true;          // catalog.jsonl: every movie, or only those the datasets use
};

// Everything generated for one user.
struct UserExamples {
  std::vector<SftExample> sft;
  std::vector<Pitch> pitches;  // the SFT pitches as the teacher wrote them (for statistics and tests)
  std::vector<NliPair> nli;
  std::vector<PreferencePair> appeal, personalization;
  std::vector<RelevanceExample> relevance;
};

namespace detail {
inline ClaimRecord claim_record(const Claim& c) {
  return {c.fact_id, to_string(c.kind), c.value, c.supported};
}

inline SftExample sft_example(const Pitch& pitch, const CatalogItem& movie, const UserProfile& profile,
                              float rating) {
  SftExample e;
  e.user_id = profile.user_id;
  e.movie_id = movie.movie_id;
  e.rating = rating;
  e.title = movie.title;
  e.year = movie.year;
  e.genres = movie.genres;
  e.overview = movie.overview;
  e.profile = profile.text;
  e.pitch = pitch.text;
  e.facts = pitch.facts;
  for (const auto& c : pitch.claims()) e.claims.push_back(claim_record(c));
  for (auto d : pitch.defects) e.defects.push_back(to_string(d));
  e.link_terms = pitch.link_terms;
  e.appeal = pitch.appeal;
  e.pattern = pitch.pattern();
  std::size_t at = 0;  // the teacher joins sentences with one space
  for (const auto& s : pitch.sentences) {
    if (s.slot == Slot::link) e.link_span = {at, at + s.text.size()};
    at += s.text.size() + 1;
  }
  return e;
}

inline std::vector<std::string> claim_ids(const Sentence& s) {
  std::vector<std::string> ids;
  for (const auto& c : s.claims) ids.push_back(c.fact_id);
  return ids;
}

// Draws a defect for one pitch (or none) given what the plan allows.
inline std::optional<Defect> draw_defect(const Teacher& teacher, const PitchPlan& plan,
                                         const DatasetOptions& o, Rng& rng) {
  const bool defective = rng.uniform() < o.defect_rate;
  const double pick = rng.uniform();
  if (!defective) return std::nullopt;
  double total = 0;
  for (std::size_t k = 0; k < all_defects.size(); ++k)
    if (teacher.can_apply(plan, all_defects[k])) total += std::max(0.0, o.defect_weights[k]);
  if (total <= 0) return std::nullopt;
  double acc = 0;
  std::optional<Defect> last;
  for (std::size_t k = 0; k < all_defects.size(); ++k) {
    if (!teacher.can_apply(plan, all_defects[k]) || o.defect_weights[k] <= 0) continue;
    acc += o.defect_weights[k] / total;
    last = all_defects[k];
    if (pick < acc) return last;
  }
  return last;
}
}  // namespace detail

// The (movie, training rating) pairs a user gets pitches for, in the order they are written.
inline std::vector<std::pair<cf::Index, float>> pitch_targets(const cf::Csr& train_rows,
                                                              const Catalog& catalog, cf::Index user,
                                                              const DatasetOptions& o, Rng& rng) {
  std::vector<std::pair<cf::Index, float>> positives, others;
  const auto u = static_cast<std::size_t>(user);
  if (u >= train_rows.rows()) return {};
  const auto items = train_rows.cols_of(u);
  const auto values = train_rows.values_of(u);
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (o.require_overview && !catalog.at(items[k]).has_overview()) continue;
    (values[k] >= o.positive_threshold ? positives : others).emplace_back(items[k], values[k]);
  }
  auto sample = [&](std::vector<std::pair<cf::Index, float>>& from, std::size_t n) {
    n = std::min(n, from.size());
    for (std::size_t k = 0; k < n; ++k)
      std::swap(from[k], from[k + static_cast<std::size_t>(rng.below(from.size() - k))]);
    return std::vector<std::pair<cf::Index, float>>(from.begin(),
                                                    from.begin() + static_cast<std::ptrdiff_t>(n));
  };
  const std::size_t n = std::min(o.pitches_per_user, positives.size() + others.size());
  std::size_t n_pos =
      std::min(positives.size(), static_cast<std::size_t>(std::llround(o.positive_share * n)));
  std::size_t n_other = std::min(others.size(), n - n_pos);
  n_pos = std::min(positives.size(), n - n_other);  // top up with positives when others run short
  auto out = sample(positives, n_pos);
  auto rest = sample(others, n_other);
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

// Writes one user's examples. All randomness comes from `rng` (the builder gives each user a stream
// of its own, so users can be generated in any order or in parallel with the same result).
inline UserExamples make_user_examples(const Teacher& teacher, const UserProfile& profile,
                                       const cf::Csr& train_rows, const DatasetOptions& o, Rng& rng,
                                       const ItemTargets* targets = nullptr) {
  UserExamples out;
  const auto& catalog = teacher.catalog();
  for (const auto& [item, rating] : pitch_targets(train_rows, catalog, profile.user, o, rng)) {
    const auto& movie = catalog.at(item);
    const PitchPlan plan = teacher.plan(profile, item, rng);
    const auto defect = detail::draw_defect(teacher, plan, o, rng);
    const Pitch pitch = teacher.render(plan, defect);
    const Pitch clean = defect ? teacher.render(plan) : pitch;
    out.sft.push_back(detail::sft_example(pitch, movie, profile, rating));
    out.pitches.push_back(pitch);
    // Random draws for the pairs happen whether or not a pair is possible (fixed draw count).
    const bool a_first = rng.uniform() < 0.5f, p_first = rng.uniform() < 0.5f;
    const bool counterpart = rng.uniform() < 0.5f;
    const auto any_sentence = rng.below(std::max<std::size_t>(1, clean.sentences.size()));
    const bool use_generic = rng.uniform() < 0.5f;

    // NLI: the hallucinated sentence (contradiction) and either its clean counterpart or any clean
    // sentence (entailment): minimal pairs plus coverage of every sentence kind.
    const std::string premise = premise_text(movie);
    if (teacher.can_apply(plan, Defect::hallucinated)) {
      const Pitch wrong = defect == Defect::hallucinated ? pitch : teacher.render(plan, Defect::hallucinated);
      for (std::size_t k = 0; k < wrong.sentences.size(); ++k) {
        const auto& s = wrong.sentences[k];
        if (s.supported()) continue;
        out.nli.push_back({profile.user_id, movie.movie_id, premise, s.text, "contradiction",
                           to_string(s.slot), detail::claim_ids(s)});
        const Sentence* good = &clean.sentences[static_cast<std::size_t>(any_sentence)];
        if (counterpart)
          for (const auto& c : clean.sentences)
            if (c.slot == s.slot) good = &c;
        out.nli.push_back({profile.user_id, movie.movie_id, premise, good->text, "entailment",
                           to_string(good->slot), detail::claim_ids(*good)});
      }
    }
    // Appeal: the clean pitch against its bland rendering.
    {
      const Pitch bland = defect == Defect::bland ? pitch : teacher.render(plan, Defect::bland);
      PreferencePair pair{profile.user_id,
                          movie.movie_id,
                          "",
                          a_first ? clean.text : bland.text,
                          a_first ? bland.text : clean.text,
                          a_first ? "a" : "b",
                          "bland"};
      out.appeal.push_back(std::move(pair));
    }
    // Personalization: the clean (linked) pitch against a generic or off-preference one.
    if (!clean.has(Defect::generic)) {
      std::optional<Defect> loser;
      const bool off_ok = teacher.can_apply(plan, Defect::off_preference);
      loser = (use_generic || !off_ok) ? Defect::generic : Defect::off_preference;
      const Pitch worse = defect == loser ? pitch : teacher.render(plan, loser);
      out.personalization.push_back({profile.user_id, movie.movie_id, profile.text,
                                     p_first ? clean.text : worse.text, p_first ? worse.text : clean.text,
                                     p_first ? "a" : "b", to_string(*loser)});
    }
    out.relevance.push_back(
        {profile.user_id, movie.movie_id, clean.text, targets ? targets->of(item) : std::vector<float>{}});
  }
  return out;
}

// What build_datasets reads.
struct DataSources {
  const Catalog& catalog;
  const std::vector<UserProfile>& profiles;  // by user index, from the training ratings
  const cf::Ratings& train;                  // the CF split's training ratings
  const cf::Ratings& heldout;                // its held-out ratings (evaluation pairs only)
  const ItemTargets* targets = nullptr;      // CF item embeddings for relevance targets, or none
};

// Pattern-sharing and length statistics over a set of pitches (see docs/data.md for definitions).
inline nlohmann::json pitch_statistics(const std::vector<Pitch>& pitches, std::uint64_t seed,
                                       std::size_t trials = 100000) {
  nlohmann::json s;
  const std::size_t n = pitches.size();
  s["pitches"] = n;
  if (n < 2) return s;
  std::map<std::string, std::size_t> full;
  std::map<std::string, std::map<std::string, std::size_t>> per_slot;
  std::vector<std::set<std::string>> sets(n);
  std::vector<double> words, chars, sentences;
  for (std::size_t k = 0; k < n; ++k) {
    const auto& p = pitches[k];
    ++full[p.pattern()];
    for (const auto& sen : p.sentences) {
      ++per_slot[to_string(sen.slot)][sen.pattern];
      sets[k].insert(sen.pattern);
    }
    std::size_t w = 0;
    bool in_word = false;
    for (char c : p.text) {
      const bool space = c == ' ';
      if (!space && !in_word) ++w;
      in_word = !space;
    }
    words.push_back(static_cast<double>(w));
    chars.push_back(static_cast<double>(p.text.size()));
    sentences.push_back(static_cast<double>(p.sentences.size()));
  }
  auto collision = [&](const std::map<std::string, std::size_t>& counts, std::size_t total) {
    double same = 0;
    for (const auto& [_, c] : counts) same += static_cast<double>(c) * static_cast<double>(c - 1);
    return total < 2 ? 0.0 : same / (static_cast<double>(total) * static_cast<double>(total - 1));
  };
  s["distinct_patterns"] = full.size();
  s["same_full_pattern_rate"] = collision(full, n);
  nlohmann::json slots = nlohmann::json::object();
  for (const auto& [slot, counts] : per_slot) {
    std::size_t total = 0;
    for (const auto& [_, c] : counts) total += c;
    slots[slot] = {{"templates_used", counts.size()},
                   {"sentences", total},
                   {"same_template_rate", collision(counts, total)}};
  }
  s["per_slot"] = slots;
  // Random pairs of distinct pitches: share at least one sentence template; mean shared templates.
  Rng rng(seed, 0x57a7ULL);
  std::size_t any = 0;
  double shared = 0;
  for (std::size_t t = 0; t < trials; ++t) {
    const auto a = static_cast<std::size_t>(rng.below(n));
    auto b = static_cast<std::size_t>(rng.below(n - 1));
    if (b >= a) ++b;
    std::size_t common = 0;
    for (const auto& x : sets[a]) common += sets[b].count(x);
    any += common > 0;
    shared += static_cast<double>(common);
  }
  s["pairs_sampled"] = trials;
  s["share_any_sentence_pattern_rate"] =
      trials ? static_cast<double>(any) / static_cast<double>(trials) : 0.0;
  s["mean_shared_sentence_patterns"] = trials ? shared / static_cast<double>(trials) : 0.0;
  auto summary = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) sum += x;
    auto q = [&](double f) { return v[static_cast<std::size_t>(f * static_cast<double>(v.size() - 1))]; };
    return nlohmann::json{{"mean", std::round(sum / static_cast<double>(v.size()) * 100) / 100},
                          {"min", v.front()},
                          {"p10", q(0.1)},
                          {"p50", q(0.5)},
                          {"p90", q(0.9)},
                          {"max", v.back()}};
  };
  s["words"] = summary(words);
  s["chars"] = summary(chars);
  s["sentences"] = summary(sentences);
  return s;
}

// Generates and writes every dataset under `out` (layout in the file comment) and returns the
// statistics that are also written to out/stats.json. Each file is written atomically.
inline nlohmann::json build_datasets(const DataSources& src, const DatasetOptions& o,
                                     const std::filesystem::path& out, bool progress = true,
                                     TeacherOptions teacher_options = {}) {
  const auto& catalog = src.catalog;
  const std::size_t n_users = src.profiles.size();
  if (src.train.n_users > n_users)
    fail<InvalidArgument>("build_datasets: fewer profiles than users in train");
  const auto splits = split_users(n_users, o.val_users, o.test_users, o.seed);
  const Teacher teacher(catalog, teacher_options);
  const auto rows = cf::by_user(src.train);
  nlohmann::json stats;

  io::write_jsonl_with(out / "profiles.jsonl", [&](auto&& emit) {
    for (std::size_t u = 0; u < n_users; ++u) emit(profile_json(src.profiles[u], catalog, splits[u]));
  });

  std::optional<Progress> bar;
  if (progress) bar.emplace("data build", n_users, "users");
  std::vector<Pitch> all_pitches;
  std::map<std::string, std::size_t> defect_mix;
  std::set<std::int64_t> used;  // movies with a pitch or a held-out pair
  for (const UserSplit split : all_user_splits) {
    UserExamples bundle;
    for (std::size_t u = 0; u < n_users; ++u) {
      if (splits[u] != split) continue;
      Rng rng(o.seed, 0x10000ULL + u);  // one stream per user
      auto ex = make_user_examples(teacher, src.profiles[u], rows, o, rng, src.targets);
      auto move_into = [](auto& to, auto& from) {
        to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
      };
      for (const auto& e : ex.sft) used.insert(e.movie_id);
      move_into(bundle.sft, ex.sft);
      move_into(bundle.pitches, ex.pitches);
      move_into(bundle.nli, ex.nli);
      move_into(bundle.appeal, ex.appeal);
      move_into(bundle.personalization, ex.personalization);
      move_into(bundle.relevance, ex.relevance);
      if (bar) bar->advance(1, std::string(to_string(split)) + " users");
    }
    // Held-out evaluation pairs for val/test users.
    std::vector<HeldoutPair> heldout;
    if (split != UserSplit::train) {
      for (std::size_t k = 0; k < src.heldout.size(); ++k) {
        const auto u = static_cast<std::size_t>(src.heldout.user[k]);
        if (u >= n_users || splits[u] != split || src.heldout.rating[k] < o.heldout_threshold) continue;
        const auto& movie = catalog.at(src.heldout.item[k]);
        if (o.require_overview && !movie.has_overview()) continue;
        used.insert(movie.movie_id);
        heldout.push_back({src.profiles[u].user_id, movie.movie_id, src.heldout.rating[k], movie.title,
                           movie.year, movie.genres, movie.overview, src.profiles[u].text});
      }
    }
    const std::string name = std::string(to_string(split)) + ".jsonl";
    write_records(out / "sft" / name, bundle.sft);
    write_records(out / "nli" / name, bundle.nli);
    write_records(out / "appeal" / name, bundle.appeal);
    write_records(out / "personalization" / name, bundle.personalization);
    write_records(out / "relevance" / name, bundle.relevance);
    if (split != UserSplit::train) write_records(out / "heldout" / name, heldout);

    auto& s = stats["splits"][to_string(split)];
    s["users"] = std::count(splits.begin(), splits.end(), split);
    s["sft"] = bundle.sft.size();
    s["nli"] = bundle.nli.size();
    s["appeal"] = bundle.appeal.size();
    s["personalization"] = bundle.personalization.size();
    s["relevance"] = bundle.relevance.size();
    if (split != UserSplit::train) s["heldout"] = heldout.size();
    std::map<std::string, std::size_t> mix{{"clean", 0}};
    for (const auto& e : bundle.sft) {
      if (e.defects.empty()) ++mix["clean"];
      for (const auto& d : e.defects) ++mix[d];
    }
    s["defects"] = mix;
    for (const auto& [k, v] : mix) defect_mix[k] += v;
    std::size_t entail = 0;
    for (const auto& p : bundle.nli) entail += p.label == "entailment";
    s["nli_entailment"] = entail;
    std::size_t a_wins = 0;
    for (const auto& p : bundle.appeal) a_wins += p.winner == "a";
    for (const auto& p : bundle.personalization) a_wins += p.winner == "a";
    s["pairs_won_by_a"] = a_wins;
    all_pitches.insert(all_pitches.end(), std::make_move_iterator(bundle.pitches.begin()),
                       std::make_move_iterator(bundle.pitches.end()));
  }
  if (bar) bar->finish();
  io::write_jsonl_with(out / "catalog.jsonl", [&](auto&& emit) {
    for (const auto& c : catalog.items())
      if (o.full_catalog || used.count(c.movie_id)) emit(catalog_json(c));
  });
  stats["defects"] = defect_mix;
  stats["pitch"] = pitch_statistics(all_pitches, o.seed, o.stats_pairs);
  std::size_t with_overview = 0, facts = 0;
  for (const auto& c : catalog.items()) {
    with_overview += c.has_overview();
    facts += c.facts.size();
  }
  stats["catalog"] = {{"movies", catalog.size()}, {"with_overview", with_overview}, {"facts", facts}};
  std::size_t with_dislike = 0, with_like = 0, rated = 0;
  for (const auto& p : src.profiles) {
    if (p.n_ratings == 0) continue;
    ++rated;
    with_like += !p.liked_genres.empty() || !p.liked_tags.empty();
    with_dislike += !p.disliked_genres.empty() || !p.disliked_tags.empty();
  }
  stats["profiles"] = {{"users", n_users},
                       {"with_ratings", rated},
                       {"with_likes", with_like},
                       {"with_dislikes", with_dislike}};
  stats["relevance_targets"] = src.targets ? nlohmann::json(src.targets->dim) : nlohmann::json(nullptr);
  io::write_file_atomically(out / "stats.json", stats.dump(2) + "\n");
  return stats;
}

}  // namespace p4lm::data
