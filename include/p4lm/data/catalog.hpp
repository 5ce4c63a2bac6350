#pragma once
// The item catalog: what p4lm knows to be true about each movie, as atomic facts with stable ids.
// Facts are the ground truth for the teacher (it states only these, except when it is told to
// hallucinate), for the precision reward's NLI premises, and for the gold judge.
//
//   auto ml = p4lm::cf::load_movielens(p4lm::cf::bundled_movielens(),
//                                      {.overviews = p4lm::cf::bundled_overviews()});
//   auto catalog = p4lm::data::build_catalog(ml);
//   const auto& heat = catalog.at(ml.items.at(6));   // facts "m6/genre/Action", "m6/year/1995", ...
//
// Fact ids are "m<movieId>/<kind>/<key>": genre name, year, lower-cased tag, overview sentence index
// ("m318/genre/Drama", "m318/year/1994", "m318/tag/prison", "m318/ov/2"). They depend only on the
// MovieLens files and the options, not on the order in which anything is built.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "p4lm/cf/movielens.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::data {

enum class FactKind { genre, year, tag, overview };

inline const char* to_string(FactKind kind) {
  switch (kind) {
    case FactKind::genre:
      return "genre";
    case FactKind::year:
      return "year";
    case FactKind::tag:
      return "tag";
    case FactKind::overview:
      return "ov";
  }
  return "?";
}

struct Fact {
  std::string id;  // "m318/genre/Drama"
  FactKind kind{};
  std::string value;  // genre name, year digits, tag as users spell it most often, or the sentence
};

// A user tag with how many tagging events (any user) attached it to the movie.
struct WeightedTag {
  std::string key;      // lower-cased, spaces collapsed: what identifies the tag
  std::string display;  // the spelling used most often (first seen on ties)
  int count = 0;
};

struct CatalogItem {
  cf::Index item = 0;
  std::int64_t movie_id = 0;
  std::string title;           // display form: "The Postman" (see display_title)
  std::string original_title;  // as in movies.csv, year removed: "Postman, The (Postino, Il)"
  std::optional<int> year;
  std::vector<std::string> genres;
  std::vector<WeightedTag> tags;  // every usable tag, most-used first (ties: key order)
  std::string overview;           // TMDB overview, empty if none
  std::vector<std::string> overview_sentences;
  std::vector<Fact> facts;  // genres, year, top tags, overview sentences (in that order)

  bool has_overview() const noexcept { return !overview.empty(); }
  bool has_genre(std::string_view g) const {
    return std::find(genres.begin(), genres.end(), g) != genres.end();
  }
  // Any of the movie's tags, not only those that became facts (so a borrowed tag is surely foreign).
  bool has_tag_key(std::string_view key) const {
    return std::any_of(tags.begin(), tags.end(), [&](const WeightedTag& t) { return t.key == key; });
  }
  const Fact* find_fact(std::string_view id) const {
    for (const auto& f : facts)
      if (f.id == id) return &f;
    return nullptr;
  }
  // "Heat (1995)".
  std::string title_with_year() const { return year ? title + " (" + std::to_string(*year) + ")" : title; }
};

struct CatalogOptions {
  std::size_t max_tag_facts = 5;  // top tags (by count) that become facts
  int min_tag_count = 1;          // tags used fewer times are dropped
  // Tags about a user's viewing logistics rather than the movie (prefix match on the lower-cased key).
  std::vector<std::string> ignored_tag_prefixes{
      "in netflix queue", "netflix", "bd-r", "bd-video", "dvd", "clv", "seen", "to see", "watched"};
};

class Catalog {
 public:
  Catalog() = default;
  explicit Catalog(std::vector<CatalogItem> items) : items_(std::move(items)) {
    for (std::size_t i = 0; i < items_.size(); ++i) by_movie_id_.emplace(items_[i].movie_id, i);
    for (const auto& it : items_) {
      for (const auto& g : it.genres)
        if (std::find(genres_.begin(), genres_.end(), g) == genres_.end()) genres_.push_back(g);
    }
    std::sort(genres_.begin(), genres_.end());
  }

  std::size_t size() const noexcept { return items_.size(); }
  const std::vector<CatalogItem>& items() const noexcept { return items_; }
  const CatalogItem& at(cf::Index item) const {
    if (item < 0 || static_cast<std::size_t>(item) >= items_.size())
      fail<InvalidArgument>("catalog: item index ", item, " out of range [0, ", items_.size(), ")");
    return items_[static_cast<std::size_t>(item)];
  }
  const CatalogItem& by_movie_id(std::int64_t movie_id) const {
    const auto it = by_movie_id_.find(movie_id);
    if (it == by_movie_id_.end()) fail<InvalidArgument>("catalog: no movie with movieId ", movie_id);
    return items_[it->second];
  }
  // Every genre name that occurs, sorted.
  const std::vector<std::string>& genres() const noexcept { return genres_; }

 private:
  std::vector<CatalogItem> items_;
  std::unordered_map<std::int64_t, std::size_t> by_movie_id_;
  std::vector<std::string> genres_;
};

namespace detail {

inline std::string tag_key(std::string_view raw) {
  std::string key;
  bool space = false;
  for (char c : raw) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !key.empty();
      continue;
    }
    if (space) key.push_back(' ');
    space = false;
    key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return key;
}

inline std::string trim_copy(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Words after which a period does not end a sentence.
inline bool is_abbreviation(std::string_view word) {
  static const std::unordered_set<std::string_view> known{
      "Mr",   "Mrs", "Ms",  "Dr",  "St",  "Jr",   "Sr",    "Prof", "Lt",  "Col", "Gen",
      "Capt", "Sgt", "Rev", "Mt",  "vs",  "etc",  "No",    "Vol",  "Inc", "Ltd", "Co",
      "Bros", "U.S", "U.K", "L.A", "D.C", "Ph.D", "a.k.a", "i.e",  "e.g"};
  if (known.count(word)) return true;
  // Initials such as "J" in "J. R. R. Tolkien".
  return word.size() == 1 && std::isupper(static_cast<unsigned char>(word[0]));
}

}  // namespace detail

// Splits prose into sentences: a sentence ends at '.', '!' or '?' (with closing quotes/brackets)
// followed by whitespace and an upper-case letter, digit or opening quote, unless the word before the
// period is a known abbreviation or an initial. Whitespace is trimmed; empty pieces are dropped.
inline std::vector<std::string> split_sentences(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (c != '.' && c != '!' && c != '?') continue;
    std::size_t end = i + 1;
    while (end < n && (text[end] == '"' || text[end] == '\'' || text[end] == ')' || text[end] == '.')) ++end;
    if (end >= n || !std::isspace(static_cast<unsigned char>(text[end]))) continue;
    std::size_t next = end;
    while (next < n && std::isspace(static_cast<unsigned char>(text[next]))) ++next;
    if (next >= n) continue;
    const auto nc = static_cast<unsigned char>(text[next]);
    if (!(std::isupper(nc) || std::isdigit(nc) || nc == '"' || nc == '\'' || nc >= 0x80)) continue;
    if (c == '.') {
      std::size_t w = i;
      while (w > start && !std::isspace(static_cast<unsigned char>(text[w - 1])) && text[w - 1] != '(') --w;
      if (detail::is_abbreviation(text.substr(w, i - w))) continue;
    }
    auto piece = detail::trim_copy(text.substr(start, end - start));
    if (!piece.empty()) out.push_back(std::move(piece));
    start = next;
    i = next - 1;
  }
  auto last = detail::trim_copy(text.substr(start));
  if (!last.empty()) out.push_back(std::move(last));
  return out;
}

// MovieLens files titles as "Postman, The (Postino, Il)": the display form moves the trailing
// article to the front and drops the alternate title in parentheses ("The Postman").
inline std::string display_title(std::string_view raw) {
  std::string_view main = raw;
  if (const auto paren = main.find(" ("); paren != std::string_view::npos && paren > 0)
    main = main.substr(0, paren);
  static const char* const articles[] = {"The", "A",  "An",  "Les", "La",  "Le",
                                         "Il",  "El", "Das", "Die", "Der", "L'"};
  for (const char* article : articles) {
    const std::string suffix = std::string(", ") + article;
    if (main.size() > suffix.size() && main.ends_with(suffix)) {
      const std::string_view head = main.substr(0, main.size() - suffix.size());
      const std::string_view a(article);
      return std::string(a) + (a.ends_with('\'') ? "" : " ") + std::string(head);
    }
  }
  return std::string(main);
}

inline std::string fact_id(std::int64_t movie_id, FactKind kind, std::string_view key) {
  return "m" + std::to_string(movie_id) + "/" + to_string(kind) + "/" + std::string(key);
}

// The catalog of every movie in ml (item index order). Tags are counted over all of tags.csv: they
// describe the movie, not a user, so using every tagger does not leak a user's held-out ratings.
inline Catalog build_catalog(const cf::MovieLens& ml, const CatalogOptions& options = {}) {
  // item -> key -> (count, spelling -> count)
  std::vector<std::map<std::string, std::pair<int, std::map<std::string, int>>>> tag_counts(ml.movies.size());
  for (const auto& t : ml.tags) {
    const auto key = detail::tag_key(t.tag);
    if (key.empty()) continue;
    if (std::any_of(options.ignored_tag_prefixes.begin(), options.ignored_tag_prefixes.end(),
                    [&](const std::string& p) { return key.starts_with(p); }))
      continue;
    auto& slot = tag_counts.at(static_cast<std::size_t>(t.item))[key];
    ++slot.first;
    ++slot.second[detail::trim_copy(t.tag)];
  }
  std::vector<CatalogItem> items;
  items.reserve(ml.movies.size());
  for (std::size_t i = 0; i < ml.movies.size(); ++i) {
    const auto& m = ml.movies[i];
    CatalogItem c;
    c.item = static_cast<cf::Index>(i);
    c.movie_id = m.movie_id;
    c.title = display_title(m.title);
    c.original_title = m.title;
    c.year = m.year;
    c.genres = m.genres;
    for (const auto& [key, entry] : tag_counts[i]) {
      if (entry.first < options.min_tag_count) continue;
      std::string display;
      int best = 0;
      for (const auto& [spelling, n] : entry.second)
        if (n > best) best = n, display = spelling;  // map order breaks ties deterministically
      c.tags.push_back({key, display, entry.first});
    }
    std::stable_sort(c.tags.begin(), c.tags.end(),
                     [](const WeightedTag& a, const WeightedTag& b) { return a.count > b.count; });
    c.overview = m.overview;
    c.overview_sentences = split_sentences(m.overview);
    for (const auto& g : c.genres)
      c.facts.push_back({fact_id(m.movie_id, FactKind::genre, g), FactKind::genre, g});
    if (c.year) {
      const auto y = std::to_string(*c.year);
      c.facts.push_back({fact_id(m.movie_id, FactKind::year, y), FactKind::year, y});
    }
    for (std::size_t k = 0; k < c.tags.size() && k < options.max_tag_facts; ++k)
      c.facts.push_back(
          {fact_id(m.movie_id, FactKind::tag, c.tags[k].key), FactKind::tag, c.tags[k].display});
    for (std::size_t k = 0; k < c.overview_sentences.size(); ++k)
      c.facts.push_back({fact_id(m.movie_id, FactKind::overview, std::to_string(k)), FactKind::overview,
                         c.overview_sentences[k]});
    items.push_back(std::move(c));
  }
  return Catalog(std::move(items));
}

// The NLI premise for a movie: its facts as plain statements, then the overview. This is what the
// precision reward model reads as evidence (DESIGN.md §5).
inline std::string premise_text(const CatalogItem& item) {
  std::string out = "Title: " + item.title + ".";
  if (item.year) out += " Year: " + std::to_string(*item.year) + ".";
  if (!item.genres.empty()) {
    out += " Genres: ";
    for (std::size_t k = 0; k < item.genres.size(); ++k) out += (k ? ", " : "") + item.genres[k];
    out += ".";
  }
  bool any_tag = false;
  for (const auto& f : item.facts) {
    if (f.kind != FactKind::tag) continue;
    out += (any_tag ? ", " : " Tags: ") + f.value;
    any_tag = true;
  }
  if (any_tag) out += ".";
  if (item.has_overview()) out += " Overview: " + item.overview;
  return out;
}

}  // namespace p4lm::data
