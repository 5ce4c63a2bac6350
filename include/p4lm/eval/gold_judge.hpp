#pragma once
// The gold judge: a deterministic scorer of pitches with no learned parts, the yardstick the learned
// rewards (precision, personalization, ...) are compared against. It NEVER feeds training, model
// selection or early stopping: a judge that a model is tuned against stops measuring anything (the
// objection the P4LM paper's reviewers raised). Report its scores next to the rewards; do not
// optimise them. docs/rewards.md ("Gold judge") has the formulas and its measured accuracy.
//
//   auto judge = p4lm::eval::GoldJudge::load("runs/data");          // catalog.jsonl + held-out ratings
//   auto s = judge.score({.user_id = 414, .movie_id = 6, .pitch = "Heat (1995) is a gripping ..."});
//   s.precision.score;  s.personalization.score;  s.fluency.score;  // each in [0, 1]
//   auto m = p4lm::eval::gold_metrics(s);                            // {"gold/precision", ...}
//
// Three dimensions:
// - precision: what the pitch says about the movie (its title, "Title (year)", bare years, genre
//   words, quoted tags, plot sentences) against the catalog. A plot sentence is compared by content
//   words with every overview sentence: closest to one of this movie's it is supported, closest to
//   another movie's (and close enough) it is that movie's plot: a hallucination. "Other Title (year)"
//   outside a sentence about the user is another movie's statement too. precision = S / (S + C)
//   over supported S and contradicted C claims (1 when the pitch makes none).
// - personalization: the genres, quoted tags and "Title (year)" a sentence about the user ("you",
//   "your" + love/enjoy/fan/taste/... or dislike/hate/avoid...) says the user likes or dislikes,
//   each checked against the user's HELD-OUT ratings (eval/heldout_ratings.hpp), never the profile:
//     h = sum over held-out movies m with the term of (r_m - mean held-out rating) / (n + k)
//     value = clamp(0.5 + s * h / (2 * scale), 0, 1),  s = +1 (likes) or -1 (dislikes)
//   personalization = mean value over the claims some held-out rating bears on (a title the user
//   never rated counts as value 0); 0.5 when no claim has evidence; 0 when the pitch says nothing
//   about the user (nothing personal in it).
// - fluency: (1 - share of words in no dictionary) * (1 - share of repeated word n-grams) * a
//   length factor. The dictionary is every word of the catalog (titles, tags, genres and the TMDB
//   overviews bundled in data/plots), never a system word list, so it works the same everywhere.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/data/catalog.hpp"
#include "p4lm/data/teacher.hpp"
#include "p4lm/eval/catalog_file.hpp"
#include "p4lm/eval/heldout_ratings.hpp"
#include "p4lm/eval/lexicon.hpp"
#include "p4lm/io/csv.hpp"
#include "p4lm/text/repetition.hpp"

namespace p4lm::eval {

// What the judge reads: who the pitch is for, which movie it pitches, and its text.
struct PitchToJudge {
  std::int64_t user_id = 0, movie_id = 0;
  std::string pitch;
};

enum class ClaimKind { title, year, genre, tag, plot };
enum class Verdict { supported, contradicted, no_evidence };
enum class Stance { likes, dislikes };

inline const char* to_string(ClaimKind k) {
  switch (k) {
    case ClaimKind::title:
      return "title";
    case ClaimKind::year:
      return "year";
    case ClaimKind::genre:
      return "genre";
    case ClaimKind::tag:
      return "tag";
    case ClaimKind::plot:
      return "plot";
  }
  return "?";
}
inline const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::supported:
      return "supported";
    case Verdict::contradicted:
      return "contradicted";
    case Verdict::no_evidence:
      return "no_evidence";
  }
  return "?";
}
inline const char* to_string(Stance s) {
  return s == Stance::likes ? "likes" : "dislikes";
}

// A statement about the pitched movie.
struct MovieClaim {
  ClaimKind kind{};
  std::string text;     // as written (the sentence, for plot)
  Verdict verdict{};    // supported or contradicted
  std::string fact_id;  // the catalog fact it matches: this movie's, or another's for a hallucination
  std::int64_t other_movie_id = 0;  // non-zero: the statement belongs to this other movie
  double match = 1;                 // plot: share of the sentence's content words in the matched sentence
};

struct PrecisionScore {
  double score = 1;
  std::size_t supported = 0, contradicted = 0;
  std::vector<MovieClaim> claims;
};

// A statement about what the user likes or dislikes, with its held-out evidence.
struct PreferenceClaim {
  ClaimKind kind{};  // genre, tag or title
  std::string term;  // genre name, tag key, or the movieId of a title
  std::string text;  // as written
  Stance stance{};
  std::size_t heldout_movies = 0;  // the user's held-out ratings that bear on it
  double affinity = 0;             // h in stars (see the file comment)
  double value = 0.5;              // in [0, 1]
  Verdict verdict{};
  std::string note;  // why there is no evidence, when there is none
};

struct PersonalizationScore {
  double score = 0;
  std::size_t supported = 0, contradicted = 0, no_evidence = 0;
  std::vector<PreferenceClaim> claims;
};

struct FluencyScore {
  double score = 0;
  std::size_t words = 0, unknown_words = 0;
  double unknown_share = 0, repeated_ngram_share = 0, length_factor = 0;
  std::vector<std::string> unknown;  // the words no dictionary knows, in order
};

// Every dimension for one pitch.
struct GoldScores {
  std::int64_t user_id = 0, movie_id = 0;
  PrecisionScore precision;
  PersonalizationScore personalization;
  FluencyScore fluency;
};

struct GoldOptions {
  double plot_match = 0.6;          // share of a sentence's content words that makes it a plot claim
  std::size_t plot_min_words = 5;   // sentences with fewer content words are not compared with overviews
  double affinity_shrinkage = 1.0;  // k: pseudo-count of held-out ratings
  double affinity_scale = 1.0;      // |h| (stars) at which a claim is fully right (1) or wrong (0)
  double affinity_margin = 0.1;     // |h| below this (stars) is no evidence either way
  std::size_t ngram = 3;            // repeated word n-grams of this length
  std::size_t min_words = 20;       // shorter pitches: length factor words / min_words
  std::size_t max_words = 150;      // longer: 1 - (words - max) / max, at least 0
  // More dictionary text: a CSV with an `overview` column. Unset: the bundled
  // data/plots/tmdb_overviews.csv (12,833 TMDB overviews) when p4lm finds its data folder, else
  // none; an empty path: none.
  std::optional<std::filesystem::path> overviews_csv{};
  std::filesystem::path word_list{};  // optional word list, one word a line (e.g. wamerican's)
};

class GoldJudge {
 public:
  GoldJudge(data::Catalog catalog, HeldoutRatings heldout, GoldOptions options = {})
      : catalog_(std::move(catalog)), heldout_(std::move(heldout)), options_(std::move(options)) {
    const auto& o = options_;
    if (!(o.plot_match > 0 && o.plot_match <= 1) || !(o.affinity_scale > 0) || !(o.affinity_shrinkage >= 0) ||
        !(o.affinity_margin >= 0) || o.ngram == 0 || o.min_words == 0 || o.max_words < o.min_words)
      fail<InvalidArgument>(
          "GoldOptions: need plot_match in (0, 1], affinity_scale > 0, affinity_shrinkage and "
          "affinity_margin >= 0, ngram and min_words >= 1, max_words >= min_words");
    index();
  }

  // catalog.jsonl and the held-out ratings of the build in `data_dir`.
  static GoldJudge load(const std::filesystem::path& data_dir, GoldOptions options = {}) {
    return GoldJudge(read_catalog(data_dir / "catalog.jsonl"), heldout_ratings_of_build(data_dir),
                     std::move(options));
  }

  const data::Catalog& catalog() const noexcept { return catalog_; }
  const HeldoutRatings& heldout() const noexcept { return heldout_; }
  const Lexicon& lexicon() const noexcept { return lexicon_; }
  const GoldOptions& options() const noexcept { return options_; }
  // Where the fluency dictionary's words came from (for reports).
  const std::vector<std::string>& dictionary_sources() const noexcept { return dictionary_sources_; }

  // What is wrong with a pitch before it can be judged: (field, problem), or nullopt.
  std::optional<std::pair<std::string, std::string>> problem(const PitchToJudge& p) const {
    if (p.pitch.find_first_not_of(" \t\r\n") == std::string::npos) return std::pair{"pitch", "empty pitch"};
    if (!by_movie_.count(p.movie_id))
      return std::pair{"movie_id", "unknown movie " + std::to_string(p.movie_id) + " (not in the catalog)"};
    if (!heldout_.find(p.user_id))
      return std::pair{"user_id", "unknown user " + std::to_string(p.user_id) + " (no ratings)"};
    return std::nullopt;
  }

  GoldScores score(const PitchToJudge& p) const {
    if (const auto bad = problem(p))
      fail<InvalidArgument>("gold judge: ", bad->first, ": ", bad->second, " (user ", p.user_id, ", movie ",
                            p.movie_id, ")");
    const auto& movie = catalog_.items()[by_movie_.at(p.movie_id)];
    GoldScores s;
    s.user_id = p.user_id;
    s.movie_id = p.movie_id;
    judge_statements(p.pitch, movie, *heldout_.find(p.user_id), s);
    s.fluency = fluency(p.pitch);
    return s;
  }

  // Batched scoring: one GoldScores per pitch, in order; the first bad pitch throws (naming its index).
  std::vector<GoldScores> score(std::span<const PitchToJudge> pitches) const {
    std::vector<GoldScores> out;
    out.reserve(pitches.size());
    for (std::size_t k = 0; k < pitches.size(); ++k) {
      if (const auto bad = problem(pitches[k]))
        fail<InvalidArgument>("gold judge: pitch ", k, ": ", bad->first, ": ", bad->second);
      out.push_back(score(pitches[k]));
    }
    return out;
  }

  FluencyScore fluency(std::string_view text) const {
    FluencyScore f;
    std::vector<std::string> words;
    for (const auto& t : word_tokens(text)) {
      ++f.words;
      if (!t.has_letter()) continue;
      words.push_back(lower_ascii(t.text));
      if (!lexicon_.knows(t.text)) f.unknown.emplace_back(t.text);
    }
    f.unknown_words = f.unknown.size();
    f.unknown_share =
        words.empty() ? 1.0 : static_cast<double>(f.unknown_words) / static_cast<double>(words.size());
    f.repeated_ngram_share = text::repeated_ngram_share(words, options_.ngram);
    const auto w = static_cast<double>(f.words);
    const auto lo = static_cast<double>(options_.min_words), hi = static_cast<double>(options_.max_words);
    f.length_factor = w < lo ? w / lo : w > hi ? std::max(0.0, 1.0 - (w - hi) / hi) : 1.0;
    f.score = (1.0 - f.unknown_share) * (1.0 - f.repeated_ngram_share) * f.length_factor;
    return f;
  }

 private:
  struct Span {
    std::size_t begin = 0, end = 0;
  };
  // "Title (1995)": a catalog title followed by a year in parentheses.
  struct TitleMention {
    Span span;
    std::string text;
    std::size_t item = 0;  // catalog position of the movie meant (same title: the closest year)
    int year = 0;
  };
  struct OverviewSentence {
    std::size_t item = 0, k = 0;
    std::vector<std::string> words;  // content words, unique, sorted
  };

  void index() {
    for (std::size_t i = 0; i < catalog_.items().size(); ++i) {
      const auto& it = catalog_.items()[i];
      by_movie_.emplace(it.movie_id, i);
      titles_[it.title].push_back(i);
      lexicon_.add_text(it.title);
      lexicon_.add_text(it.original_title);
      for (const auto& g : it.genres) lexicon_.add_text(g);
      for (const auto& t : it.tags) {
        lexicon_.add_text(t.display);
        auto& owner = tag_owner_[t.key];
        if (owner.second < t.count) owner = {it.movie_id, t.count};
      }
      lexicon_.add_text(it.overview);
      for (std::size_t k = 0; k < it.overview_sentences.size(); ++k) {
        OverviewSentence s{i, k, content_words(it.overview_sentences[k])};
        for (const auto& w : s.words) postings_[w].push_back(static_cast<std::uint32_t>(sentences_.size()));
        sentences_.push_back(std::move(s));
      }
    }
    for (const auto& g : catalog_.genres()) {
      if (g.empty() || g.front() == '(') continue;  // "(no genres listed)"
      std::set<std::string> forms{lower_ascii(g), lower_ascii(data::genre_words(g))};
      for (auto f : std::set<std::string>(forms)) {
        if (f.ends_with('y'))
          forms.insert(f.substr(0, f.size() - 1) + "ies");
        else if (f != "imax" && f != "sci-fi" && f != "film noir" && f != "horror")
          forms.insert(f + "s");
      }
      if (g == "Sci-Fi") forms.insert({"science fiction", "scifi"});
      if (g == "Film-Noir") forms.insert({"noir", "film-noir"});
      if (g == "Children") forms.insert({"children's", "kids"});
      if (g == "Romance") forms.insert({"romantic", "romances"});
      if (g == "Animation") forms.insert({"animated"});
      for (const auto& f : forms) {
        genre_forms_.push_back({lower_words(f), g});
        lexicon_.add_text(f);
      }
    }
    // Longest form first, so "film noir" wins over "noir".
    std::stable_sort(genre_forms_.begin(), genre_forms_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    dictionary_sources_.push_back("catalog: titles, tags, genres, overviews of " +
                                  std::to_string(catalog_.size()) + " movies");
    std::filesystem::path csv;
    if (options_.overviews_csv) {
      csv = *options_.overviews_csv;
    } else {
      try {
        csv = data_path("plots/tmdb_overviews.csv");
      } catch (const DataNotFound&) {
      }
    }
    if (!csv.empty()) {
      io::CsvReader reader(csv);
      const auto overview = reader.column("overview");
      const auto title = reader.has_column("title") ? reader.column("title") : overview;
      io::CsvRow row;
      std::size_t n = 0;
      while (reader.next(row)) {
        lexicon_.add_text(row[overview]);
        lexicon_.add_text(row[title]);
        ++n;
      }
      dictionary_sources_.push_back(csv.string() + ": " + std::to_string(n) + " overviews");
    }
    if (!options_.word_list.empty()) {
      lexicon_.add_text(io::read_file(options_.word_list));
      dictionary_sources_.push_back(options_.word_list.string());
    }
  }

  static std::vector<std::string> content_words(std::string_view text) {
    std::vector<std::string> out;
    for (auto& w : lower_words(text))
      if (w.size() > 1 && !is_stopword(w)) out.push_back(std::move(w));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  // Content words of a sentence that can carry plot: no quoted tags, genre words or words that any
  // pitch uses ("film", "story"), so a template sentence does not pass for another movie's plot.
  std::vector<std::string> plot_words(std::string_view sentence) const {
    std::string text(sentence);
    for (const auto& [span, q] : quotes_in(text))
      for (std::size_t k = span.begin; k < span.end; ++k) text[k] = ' ';
    static const std::set<std::string_view> generic{"film",  "films",   "movie", "movies",
                                                    "story", "premise", "setup"};
    auto words = content_words(text);
    std::erase_if(words, [&](const std::string& w) {
      return generic.count(w) > 0 ||
             std::any_of(genre_forms_.begin(), genre_forms_.end(), [&](const auto& f) {
               return std::find(f.first.begin(), f.first.end(), w) != f.first.end();
             });
    });
    return words;
  }

  static bool word_boundary(std::string_view text, std::size_t at) {
    if (at == 0 || at >= text.size()) return true;
    return !detail::word_byte(static_cast<unsigned char>(text[at - 1])) ||
           !detail::word_byte(static_cast<unsigned char>(text[at]));
  }

  // "Title (YYYY)" mentions of any catalog title.
  std::vector<TitleMention> title_mentions(std::string_view text) const {
    std::vector<TitleMention> out;
    for (std::size_t at = text.find('('); at != std::string_view::npos; at = text.find('(', at + 1)) {
      if (at + 6 > text.size() || text[at + 5] != ')') continue;
      const auto digits = text.substr(at + 1, 4);
      if (!std::all_of(digits.begin(), digits.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        continue;
      std::size_t end = at;
      while (end > 0 && text[end - 1] == ' ') --end;
      // Word starts before `end`, nearest first: the longest catalog title wins.
      std::optional<TitleMention> best;
      std::size_t words = 0;
      for (std::size_t start = end; start-- > 0 && words < 16;) {
        if (text[start] == ' ') continue;
        if (start > 0 && text[start - 1] != ' ' && text[start - 1] != '"' && text[start - 1] != '(') continue;
        ++words;
        const auto it = titles_.find(std::string(text.substr(start, end - start)));
        if (it == titles_.end()) continue;
        const int year = std::stoi(std::string(digits));
        std::size_t item = it->second.front();
        for (auto i : it->second) {
          const auto& y = catalog_.items()[i].year;
          const auto& cur = catalog_.items()[item].year;
          if (y && (!cur || std::abs(*y - year) < std::abs(*cur - year))) item = i;
        }
        best = TitleMention{{start, at + 6}, std::string(text.substr(start, at + 6 - start)), item, year};
      }
      if (best) out.push_back(*best);
    }
    return out;
  }

  static bool overlaps(const std::vector<Span>& spans, std::size_t b, std::size_t e) {
    return std::any_of(spans.begin(), spans.end(), [&](const Span& s) { return b < s.end && s.begin < e; });
  }

  // Best containment of `words` in an overview sentence: of `movie`'s own, and of any other movie's.
  std::pair<std::pair<double, const OverviewSentence*>, std::pair<double, const OverviewSentence*>>
  plot_match(const std::vector<std::string>& words, std::size_t movie) const {
    std::unordered_map<std::uint32_t, std::size_t> hits;
    for (const auto& w : words)
      if (const auto it = postings_.find(w); it != postings_.end())
        for (auto s : it->second) ++hits[s];
    std::pair<double, const OverviewSentence*> own{0, nullptr}, other{0, nullptr};
    // Ties: the lowest sentence id, so the result does not depend on hash order.
    std::vector<std::pair<std::uint32_t, std::size_t>> sorted(hits.begin(), hits.end());
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [id, n] : sorted) {
      const double c = static_cast<double>(n) / static_cast<double>(words.size());
      auto& best = sentences_[id].item == movie ? own : other;
      if (c > best.first) best = {c, &sentences_[id]};
    }
    return {own, other};
  }

  std::string fact_of(const OverviewSentence& s) const {
    return data::fact_id(catalog_.items()[s.item].movie_id, data::FactKind::overview, std::to_string(s.k));
  }

  static bool is_preference_sentence(const std::vector<std::string>& w) {
    static const std::set<std::string_view> you{"you",    "your",  "you're", "yours",
                                                "you've", "you'd", "you'll"};
    static const std::set<std::string_view> cues{
        "love",      "loved",  "loves",     "loving",  "enjoy",     "enjoyed",    "enjoys",
        "fan",       "fans",   "taste",     "tastes",  "favourite", "favourites", "favorite",
        "favorites", "like",   "liked",     "likes",   "adore",     "adored",     "lean",
        "usual",     "prefer", "preferred", "dislike", "disliked",  "dislikes",   "hate",
        "hated",     "hates",  "avoid",     "avoided", "avoids",    "rated"};
    bool addressed = false, cue = false;
    for (std::size_t k = 0; k < w.size(); ++k) {
      addressed |= you.count(w[k]) > 0;
      cue |= cues.count(w[k]) > 0;
      if (k + 1 < w.size())
        cue |= (w[k] == "soft" && w[k + 1] == "spot") || (w[k] == "top" && w[k + 1] == "marks");
    }
    return addressed && cue;
  }

  static bool dislike_clause(const std::vector<std::string>& w) {
    static const std::set<std::string_view> cues{"dislike", "disliked", "dislikes", "hate",  "hated", "hates",
                                                 "avoid",   "avoided",  "avoids",   "can't", "cannot"};
    for (std::size_t k = 0; k < w.size(); ++k) {
      if (cues.count(w[k])) return true;
      if (w[k] == "not" && k + 1 < w.size() && (w[k + 1] == "a" || w[k + 1] == "your" || w[k + 1] == "into"))
        return true;
    }
    return false;
  }

  // Genre words in `words`: (genre name, form as written).
  std::vector<std::pair<std::string, std::string>> genres_in(const std::vector<std::string>& words) const {
    std::vector<std::pair<std::string, std::string>> out;
    for (std::size_t k = 0; k < words.size();) {
      bool matched = false;
      for (const auto& [form, genre] : genre_forms_) {
        if (form.empty() || k + form.size() > words.size()) continue;
        if (!std::equal(form.begin(), form.end(), words.begin() + static_cast<std::ptrdiff_t>(k))) continue;
        std::string written;
        for (const auto& f : form) written += (written.empty() ? "" : " ") + f;
        out.emplace_back(genre, written);
        k += form.size();
        matched = true;
        break;
      }
      if (!matched) ++k;
    }
    return out;
  }

  // Sentence punctuation <-> control characters that stand in for it inside quotes.
  static char hidden_punctuation(char c, bool hide) {
    static constexpr std::string_view shown = ".!?", hidden = "\x1D\x1E\x1F";
    const auto& from = hide ? shown : hidden;
    const auto& to = hide ? hidden : shown;
    const auto at = from.find(c);
    return at == std::string_view::npos ? '\0' : to[at];
  }

  // Quoted strings ("..." or curly quotes) with their spans.
  static std::vector<std::pair<Span, std::string>> quotes_in(std::string_view text) {
    std::vector<std::pair<Span, std::string>> out;
    static const std::string_view open_curly = "\xE2\x80\x9C", close_curly = "\xE2\x80\x9D";
    for (std::size_t k = 0; k < text.size(); ++k) {
      std::size_t body = 0, close = std::string_view::npos, close_len = 0;
      if (text[k] == '"') {
        body = k + 1;
        close = text.find('"', body);
        close_len = 1;
      } else if (text.substr(k).starts_with(open_curly)) {
        body = k + open_curly.size();
        close = text.find(close_curly, body);
        close_len = close_curly.size();
      } else {
        continue;
      }
      if (close == std::string_view::npos) break;
      out.push_back({{k, close + close_len}, std::string(text.substr(body, close - body))});
      k = close + close_len - 1;
    }
    return out;
  }

  PreferenceClaim preference(ClaimKind kind, std::string term, std::string text, Stance stance,
                             const UserHeldout& user) const {
    PreferenceClaim c{kind, std::move(term), std::move(text), stance, 0, 0, 0.5, Verdict::no_evidence, {}};
    double sum = 0;
    if (kind == ClaimKind::title) {
      const auto movie = std::stoll(c.term);
      if (const float* r = user.rating_of(movie)) {
        c.heldout_movies = 1;
        sum = *r - user.mean;
      } else if (user.rated.count(movie)) {
        c.note = "rated in training only: not evidence";
      } else {
        c.note = "the user never rated it";
        c.verdict = Verdict::contradicted;
        c.value = 0;
        return c;
      }
    } else {
      for (const auto& [movie, r] : user.ratings) {
        const auto it = by_movie_.find(movie);
        if (it == by_movie_.end()) continue;
        const auto& m = catalog_.items()[it->second];
        if (kind == ClaimKind::genre ? m.has_genre(c.term) : m.has_tag_key(c.term)) {
          ++c.heldout_movies;
          sum += r - user.mean;
        }
      }
      if (c.heldout_movies == 0) c.note = "no held-out rating of a movie with it";
    }
    if (c.heldout_movies == 0) return c;
    c.affinity = sum / (static_cast<double>(c.heldout_movies) + options_.affinity_shrinkage);
    const double signed_h = stance == Stance::likes ? c.affinity : -c.affinity;
    c.value = std::clamp(0.5 + signed_h / (2.0 * options_.affinity_scale), 0.0, 1.0);
    c.verdict = signed_h >= options_.affinity_margin    ? Verdict::supported
                : signed_h <= -options_.affinity_margin ? Verdict::contradicted
                                                        : Verdict::no_evidence;
    if (c.verdict == Verdict::no_evidence) c.note = "held-out ratings close to the user's mean";
    return c;
  }

  void judge_statements(const std::string& text, const data::CatalogItem& movie, const UserHeldout& user,
                        GoldScores& out) const {
    const std::size_t movie_pos = by_movie_.at(movie.movie_id);
    std::vector<MovieClaim> claims;
    std::vector<PreferenceClaim> prefs;
    std::string masked = text;
    std::vector<Span> taken;
    // Masked text keeps sentence ends: a masked plot sentence still ends in '.', a masked title
    // starts with an upper-case letter (so the sentence before it still ends).
    auto mask = [&](Span s, bool plot) {
      for (std::size_t k = s.begin; k < s.end; ++k) masked[k] = '_';
      if (plot) masked[s.end - 1] = '.';
      if (!plot) masked[s.begin] = 'X';
      taken.push_back(s);
    };
    // 1. This movie's overview sentences quoted verbatim: supported plot claims.
    for (std::size_t k = 0; k < movie.overview_sentences.size(); ++k) {
      const auto& sen = movie.overview_sentences[k];
      if (sen.size() < 8) continue;  // too short to be told from chance
      for (std::size_t at = text.find(sen); at != std::string::npos; at = text.find(sen, at + sen.size())) {
        if (overlaps(taken, at, at + sen.size()) || !word_boundary(text, at)) continue;
        claims.push_back({ClaimKind::plot, sen, Verdict::supported,
                          data::fact_id(movie.movie_id, data::FactKind::overview, std::to_string(k)), 0,
                          1.0});
        mask({at, at + sen.size()}, true);
      }
    }
    // 2. "Title (year)" mentions; 3. the movie's own title.
    auto mentions = title_mentions(text);
    std::erase_if(mentions, [&](const TitleMention& m) { return overlaps(taken, m.span.begin, m.span.end); });
    for (const auto& m : mentions) mask(m.span, false);
    bool own_title = false;
    for (const auto& t : {movie.title, movie.original_title}) {
      if (t.empty()) continue;
      for (std::size_t at = text.find(t); at != std::string::npos; at = text.find(t, at + 1)) {
        const auto e = at + t.size();
        if (!word_boundary(text, at) || !word_boundary(text, e) || overlaps(taken, at, e)) continue;
        own_title = true;
        mask({at, e}, false);
      }
    }
    for (const auto& m : mentions) own_title |= m.item == movie_pos;
    if (own_title) claims.push_back({ClaimKind::title, movie.title, Verdict::supported, "", 0, 1.0});

    // A period inside a quoted tag ("S.E. Hinton") does not end a sentence: hide it while splitting.
    for (const auto& [qs, q] : quotes_in(masked))
      for (std::size_t k = qs.begin; k < qs.end; ++k)
        if (const auto h = hidden_punctuation(masked[k], true)) masked[k] = h;

    // 4. Sentence by sentence (offsets recovered in the masked text).
    std::size_t cursor = 0;
    for (const auto& sentence : data::split_sentences(masked)) {
      const auto at = masked.find(sentence, cursor);
      const Span span{at == std::string::npos ? cursor : at,
                      (at == std::string::npos ? cursor : at) + sentence.size()};
      cursor = span.end;
      const auto words = lower_words(sentence);
      const bool about_user = is_preference_sentence(words);
      // Title mentions inside this sentence.
      for (const auto& m : mentions) {
        if (m.span.begin < span.begin || m.span.begin >= span.end) continue;
        const auto& meant = catalog_.items()[m.item];
        if (m.item == movie_pos) {
          const auto y = std::to_string(m.year);
          if (movie.year)
            claims.push_back({ClaimKind::year, y,
                              *movie.year == m.year ? Verdict::supported : Verdict::contradicted,
                              data::fact_id(movie.movie_id, data::FactKind::year, y), 0, 1.0});
        } else if (about_user) {
          prefs.push_back(preference(ClaimKind::title, std::to_string(meant.movie_id), m.text,
                                     dislike_clause(words) ? Stance::dislikes : Stance::likes, user));
        } else {
          claims.push_back({ClaimKind::title, m.text, Verdict::contradicted, "", meant.movie_id, 1.0});
        }
      }
      // Plot: a sentence close to an overview sentence (not one about the user).
      if (!about_user) {
        const auto content = plot_words(sentence);
        if (content.size() >= options_.plot_min_words) {
          const auto [own, other] = plot_match(content, movie_pos);
          if (own.second && own.first >= options_.plot_match && own.first >= other.first) {
            claims.push_back(
                {ClaimKind::plot, sentence, Verdict::supported, fact_of(*own.second), 0, own.first});
            continue;
          }
          if (other.second && other.first >= options_.plot_match) {
            claims.push_back({ClaimKind::plot, sentence, Verdict::contradicted, fact_of(*other.second),
                              catalog_.items()[other.second->item].movie_id, other.first});
            continue;
          }
        }
      }
      // Clauses (a dislike in one clause does not turn the whole sentence; quotes are not cut).
      std::vector<std::string_view> clauses;
      {
        const std::string_view s(sentence);
        std::size_t start = 0;
        bool in_quote = false;
        for (std::size_t k = 0; k <= s.size(); ++k) {
          if (k < s.size() && s[k] == '"') in_quote = !in_quote;
          const bool end = k == s.size() || (!in_quote && (s[k] == ',' || s[k] == ';' || s[k] == ':' ||
                                                           s.substr(k).starts_with(" but ") ||
                                                           s.substr(k).starts_with(" yet ")));
          if (!end) continue;
          if (k > start) clauses.push_back(s.substr(start, k - start));
          start = k + 1;
        }
      }
      for (const auto clause : clauses) {
        const auto quotes = quotes_in(clause);
        std::string rest(clause);
        for (const auto& [qs, q] : quotes)
          for (std::size_t k = qs.begin; k < qs.end; ++k) rest[k] = ' ';
        const auto clause_words = lower_words(rest);
        const Stance stance = dislike_clause(lower_words(clause)) ? Stance::dislikes : Stance::likes;
        for (auto [qs, q] : quotes) {
          for (char& ch : q)
            if (const auto h = hidden_punctuation(ch, false)) ch = h;
          const auto key = data::detail::tag_key(q);
          if (key.empty()) continue;
          if (about_user) {
            prefs.push_back(preference(ClaimKind::tag, key, "\"" + q + "\"", stance, user));
          } else if (movie.has_tag_key(key)) {
            claims.push_back({ClaimKind::tag, q, Verdict::supported,
                              data::fact_id(movie.movie_id, data::FactKind::tag, key), 0, 1.0});
          } else {
            const auto owner = tag_owner_.find(key);
            const auto other = owner == tag_owner_.end() ? std::int64_t{0} : owner->second.first;
            claims.push_back({ClaimKind::tag, q, Verdict::contradicted,
                              other ? data::fact_id(other, data::FactKind::tag, key) : "", other, 1.0});
          }
        }
        if (!about_user)
          for (const auto& t : word_tokens(rest)) {
            if (t.text.size() != 4 || !std::all_of(t.text.begin(), t.text.end(), [](char c) {
                  return std::isdigit(static_cast<unsigned char>(c));
                }))
              continue;
            const int y = std::stoi(std::string(t.text));
            if (y < 1870 || y > 2035 || !movie.year) continue;
            const auto v = std::string(t.text);
            claims.push_back({ClaimKind::year, v,
                              y == *movie.year ? Verdict::supported : Verdict::contradicted,
                              data::fact_id(movie.movie_id, data::FactKind::year, v), 0, 1.0});
          }
        for (const auto& [genre, written] : genres_in(clause_words)) {
          if (about_user) {
            prefs.push_back(preference(ClaimKind::genre, genre, written, stance, user));
          } else {
            claims.push_back({ClaimKind::genre, written,
                              movie.has_genre(genre) ? Verdict::supported : Verdict::contradicted,
                              data::fact_id(movie.movie_id, data::FactKind::genre, genre), 0, 1.0});
          }
        }
      }
    }
    // One claim per statement: repeating a fact does not raise precision, repeating a lie counts once.
    std::vector<MovieClaim> unique;
    for (auto& c : claims) {
      const bool seen = std::any_of(unique.begin(), unique.end(), [&](const MovieClaim& u) {
        return u.kind == c.kind && u.verdict == c.verdict && u.fact_id == c.fact_id && u.text == c.text;
      });
      if (!seen) unique.push_back(std::move(c));
    }
    auto& p = out.precision;
    p.claims = std::move(unique);
    for (const auto& c : p.claims) (c.verdict == Verdict::supported ? p.supported : p.contradicted) += 1;
    p.score = p.supported + p.contradicted == 0
                  ? 1.0
                  : static_cast<double>(p.supported) / static_cast<double>(p.supported + p.contradicted);

    auto& q = out.personalization;
    for (auto& c : prefs) {
      const bool seen = std::any_of(q.claims.begin(), q.claims.end(), [&](const PreferenceClaim& u) {
        return u.kind == c.kind && u.term == c.term && u.stance == c.stance;
      });
      if (!seen) q.claims.push_back(std::move(c));
    }
    double sum = 0;
    std::size_t weighed = 0;
    for (const auto& c : q.claims) {
      (c.verdict == Verdict::supported      ? q.supported
       : c.verdict == Verdict::contradicted ? q.contradicted
                                            : q.no_evidence) += 1;
      // A claim no held-out rating bears on neither raises nor lowers the score.
      if (c.heldout_movies == 0 && c.verdict != Verdict::contradicted) continue;
      sum += c.value;
      ++weighed;
    }
    q.score = q.claims.empty() ? 0.0 : weighed == 0 ? 0.5 : sum / static_cast<double>(weighed);
  }

  data::Catalog catalog_;
  HeldoutRatings heldout_;
  GoldOptions options_;
  Lexicon lexicon_;
  std::unordered_map<std::int64_t, std::size_t> by_movie_;
  std::unordered_map<std::string, std::vector<std::size_t>> titles_;
  std::unordered_map<std::string, std::pair<std::int64_t, int>>
      tag_owner_;  // key -> (most-tagged movie, count)
  std::vector<std::pair<std::vector<std::string>, std::string>> genre_forms_;  // words -> genre name
  std::vector<std::string> dictionary_sources_;
  std::vector<OverviewSentence> sentences_;
  std::unordered_map<std::string, std::vector<std::uint32_t>> postings_;
};

// ---- Metrics and JSON ------------------------------------------------------------------------------

// Per pitch, under the names gold/<dimension> (the score) and gold/<dimension>/<detail>.
inline std::map<std::string, double> gold_metrics(const GoldScores& s) {
  return {{"gold/precision", s.precision.score},
          {"gold/precision/contradicted", static_cast<double>(s.precision.contradicted)},
          {"gold/personalization", s.personalization.score},
          {"gold/personalization/claims", static_cast<double>(s.personalization.claims.size())},
          {"gold/fluency", s.fluency.score},
          {"gold/fluency/unknown_share", s.fluency.unknown_share},
          {"gold/fluency/repeated_ngram_share", s.fluency.repeated_ngram_share},
          {"gold/fluency/words", static_cast<double>(s.fluency.words)}};
}

// Over a batch: <name>/mean and <name>/std (population) of every per-pitch metric.
inline std::map<std::string, double> gold_summary(std::span<const GoldScores> scores) {
  std::map<std::string, std::pair<double, double>> acc;
  for (const auto& s : scores)
    for (const auto& [k, v] : gold_metrics(s)) {
      acc[k].first += v;
      acc[k].second += v * v;
    }
  std::map<std::string, double> out;
  const auto n = static_cast<double>(scores.size());
  for (const auto& [k, sums] : acc) {
    const double mean = sums.first / n;
    out[k + "/mean"] = mean;
    out[k + "/std"] = std::sqrt(std::max(0.0, sums.second / n - mean * mean));
  }
  return out;
}

inline void to_json(nlohmann::json& j, const MovieClaim& c) {
  j = {{"kind", to_string(c.kind)},
       {"text", c.text},
       {"verdict", to_string(c.verdict)},
       {"fact_id", c.fact_id}};
  if (c.other_movie_id) j["other_movie_id"] = c.other_movie_id;
  if (c.kind == ClaimKind::plot) j["match"] = std::round(c.match * 1000) / 1000;
}
inline void to_json(nlohmann::json& j, const PreferenceClaim& c) {
  j = {{"kind", to_string(c.kind)},
       {"term", c.term},
       {"text", c.text},
       {"stance", to_string(c.stance)},
       {"heldout_movies", c.heldout_movies},
       {"affinity", std::round(c.affinity * 1000) / 1000},
       {"value", std::round(c.value * 1000) / 1000},
       {"verdict", to_string(c.verdict)}};
  if (!c.note.empty()) j["note"] = c.note;
}
inline void to_json(nlohmann::json& j, const GoldScores& s) {
  const auto& p = s.precision;
  const auto& q = s.personalization;
  const auto& f = s.fluency;
  j = {{"precision",
        {{"score", p.score},
         {"supported", p.supported},
         {"contradicted", p.contradicted},
         {"claims", p.claims}}},
       {"personalization",
        {{"score", q.score},
         {"supported", q.supported},
         {"contradicted", q.contradicted},
         {"no_evidence", q.no_evidence},
         {"claims", q.claims}}},
       {"fluency",
        {{"score", f.score},
         {"words", f.words},
         {"unknown_words", f.unknown},
         {"unknown_share", f.unknown_share},
         {"repeated_ngram_share", f.repeated_ngram_share},
         {"length_factor", f.length_factor}}}};
}

}  // namespace p4lm::eval
