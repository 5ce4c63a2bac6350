#pragma once
// The teacher: a deterministic, template-based stand-in for the PaLM 2-L pitch writer of the paper.
// Given a movie (catalog) and a user (profile) it writes a short pitch of up to six sentences:
//   hook      "Clear your evening for this one."                       (appeal)
//   identity  "Heat (1995) is a gripping action and crime film."       (genre + year facts; vivid word)
//   plot      "The story: <an overview sentence, verbatim>"            (overview fact)
//   tags      "Its tags say it all: \"atmospheric\" and \"heist\"."    (tag facts)
//   link      "Since you love war and crime, this one is right up your alley." (personalization: the
//             user's strongest liked genre and the liked genre/tag the movie has, or a favourite)
//   cta       "Press play tonight."                                    (appeal)
// and records everything it did: the facts it states (ids), each sentence's template, the profile
// terms it ties the movie to, its appeal elements, and its defects.
//
// Defects are injected on request and are correct by construction:
//   hallucinated   one stated genre/year/tag is replaced by a fact of ANOTHER movie that is not true
//                  of this one (a genre it lacks, a year at least 2 away, a tag it never received);
//   generic        no link sentence: nothing ties the pitch to the user;
//   off_preference the link ties the movie to a genre/tag the user DISLIKES ("Since you love horror");
//   bland          no hook, no call to action, plain instead of vivid templates.
//
// All random choices are drawn first into a PitchPlan, in a fixed order, and a plan is then rendered
// with or without a defect. So render(plan, bland) differs from render(plan) only in the appeal
// elements: the minimal pairs the appeal, personalization and NLI datasets are made of.

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/catalog.hpp"
#include "p4lm/data/profile.hpp"

namespace p4lm::data {

enum class Defect { hallucinated, generic, off_preference, bland };
inline constexpr std::array<Defect, 4> all_defects{Defect::hallucinated, Defect::generic,
                                                   Defect::off_preference, Defect::bland};

inline const char* to_string(Defect d) {
  switch (d) {
    case Defect::hallucinated:
      return "hallucinated";
    case Defect::generic:
      return "generic";
    case Defect::off_preference:
      return "off_preference";
    case Defect::bland:
      return "bland";
  }
  return "?";
}

inline std::optional<Defect> parse_defect(std::string_view name) {
  for (auto d : all_defects)
    if (name == to_string(d)) return d;
  return std::nullopt;
}

enum class Slot { hook, identity, plot, tags, link, cta };

inline const char* to_string(Slot s) {
  switch (s) {
    case Slot::hook:
      return "hook";
    case Slot::identity:
      return "identity";
    case Slot::plot:
      return "plot";
    case Slot::tags:
      return "tags";
    case Slot::link:
      return "link";
    case Slot::cta:
      return "cta";
  }
  return "?";
}

// One factual statement inside a pitch.
struct Claim {
  std::string fact_id;  // the catalog fact; for a hallucination, the OTHER movie's fact it borrowed
  FactKind kind{};
  std::string value;
  bool supported = true;  // false: not true of the pitched movie
};

struct Sentence {
  std::string text;
  Slot slot{};
  std::string pattern;  // template id: "identity/v3", "link/genre/2"
  std::vector<Claim> claims;
  bool supported() const {
    return std::all_of(claims.begin(), claims.end(), [](const Claim& c) { return c.supported; });
  }
};

struct Pitch {
  cf::Index user = 0, item = 0;
  std::string text;
  std::vector<Sentence> sentences;
  std::vector<std::string> facts;       // ids of the TRUE facts stated, in order of appearance
  std::vector<std::string> link_terms;  // "genre:Crime", "tag:dark comedy", "favourite:318"
  std::vector<std::string> appeal;      // "hook", "vivid:gripping", "cta"
  std::vector<Defect> defects;

  bool has(Defect d) const { return std::find(defects.begin(), defects.end(), d) != defects.end(); }
  // Every claim in the pitch, in order.
  std::vector<Claim> claims() const {
    std::vector<Claim> out;
    for (const auto& s : sentences) out.insert(out.end(), s.claims.begin(), s.claims.end());
    return out;
  }
  // The sentence patterns joined: "hook/3 identity/v1 plot/0 ...". Two pitches with the same pattern
  // differ only in the facts and names filled in.
  std::string pattern() const {
    std::string out;
    for (const auto& s : sentences) out += (out.empty() ? "" : " ") + s.pattern;
    return out;
  }
};

// Words and phrases the teacher uses for appeal. Bland pitches contain none of them (except where the
// movie's own title, overview or tags happen to).
inline const std::vector<std::string>& vivid_words() {
  static const std::vector<std::string> words{"gripping",    "dazzling",     "unforgettable", "electrifying",
                                              "razor-sharp", "irresistible", "stunning",      "captivating",
                                              "thrilling",   "spellbinding"};
  return words;
}

namespace teacher_text {
// Templates. Placeholders: {title} {year} {a_adj} (article + vivid word) {adj} {a} (article for the
// genres) {genres} {sentence} {tags} {term} {fav}. Each template is one sentence.
inline const std::vector<std::string> hooks{
    "Looking for your next favourite movie?",
    "Clear your evening for this one.",
    "Here is a film you will be talking about for days.",
    "Some movies grab you from the very first scene.",
    "Trust us on this one.",
    "Get ready for something special.",
    "This is the movie-night pick you have been waiting for.",
    "Prepare to be hooked.",
    "Meet {title}.",
    "{title} deserves a spot at the top of your list.",
};
inline const std::vector<std::string> identity_vivid{
    "{title} ({year}) is {a_adj} {genres} film.",
    "Released in {year}, {title} is {a_adj} {genres} film.",
    "{title} is {a_adj} {genres} ride from {year}.",
    "Back in {year}, {title} delivered {a_adj} dose of {genres}.",
    "{title}, from {year}, serves up {adj} {genres} from start to finish.",
    "Think {adj} {genres}: that is {title}, first released in {year}.",
};
inline const std::vector<std::string> identity_plain{
    "{title} is {a} {genres} film from {year}.",
    "Released in {year}, {title} is {a} {genres} film.",
    "{title} ({year}) is listed as {genres}.",
    "The film {title} came out in {year} and is {a} {genres} film.",
};
// Fallbacks when the movie has no year (index 0) or no genres (index 1).
inline const std::vector<std::string> identity_vivid_partial{"{title} is {a_adj} {genres} film.",
                                                             "{title} ({year}) is {a_adj} film."};
inline const std::vector<std::string> identity_plain_partial{"{title} is {a} {genres} film.",
                                                             "{title} is a film from {year}."};
inline const std::vector<std::string> plots{
    "{sentence}",
    "The story: {sentence}",
    "Here is the setup: {sentence}",
    "It begins like this: {sentence}",
    "The premise: {sentence}",
};
inline const std::vector<std::string> tags_vivid{
    "Viewers tag it {tags}, and they are right.",
    "People who watched it keep using words like {tags}.",
    "Its tags say it all: {tags}.",
    "Ask around and you will hear {tags}.",
};
inline const std::vector<std::string> tags_plain{
    "Users tagged it {tags}.",
    "Tags for it include {tags}.",
    "It is tagged {tags}.",
};
// {term}: a lower-case genre ("crime") or a quoted tag ("\"dark comedy\"").
inline const std::vector<std::string> link_term{
    "Since you love {term}, this one is right up your alley.",
    "You have a soft spot for {term}, and this delivers exactly that.",
    "Your taste for {term} makes this an easy pick.",
    "It lines up with your love of {term}.",
    "For a fan of {term} like you, this is a natural next watch.",
    "Given how much you enjoy {term}, this should land well.",
};
inline const std::vector<std::string> link_favourite{
    "If you loved {fav}, this belongs on your list.",
    "Fans of {fav}, which you rated highly, will feel at home here.",
    "It shares the spirit of {fav}, one of your favourites.",
    "You gave {fav} top marks; this is cut from similar cloth.",
};
// The same, also naming the user's strongest liked genres ({taste}: "war and drama"); used whenever the
// user has a liked genre, so that the link says who the user is and not only what the movie is.
inline const std::vector<std::string> link_favourite_taste{
    "You love {taste}, and if you loved {fav}, this belongs on your list.",
    "Beyond your usual {taste}, fans of {fav}, which you rated highly, will feel at home here.",
    "You lean toward {taste}, but this shares the spirit of {fav}, one of your favourites.",
    "You gave {fav} top marks and have a taste for {taste}; this is cut from similar cloth.",
};
inline const std::vector<std::string> ctas{
    "Press play tonight.",
    "Add it to your watchlist now.",
    "Grab some popcorn and dive in.",
    "Do not let this one slip by.",
    "Give it a watch this weekend.",
    "Queue it up and thank us later.",
    "Start it tonight; you will not regret it.",
};
// Slot orders (the hook and the call to action stay first and last).
inline const std::vector<std::vector<Slot>> orders{
    {Slot::hook, Slot::identity, Slot::plot, Slot::tags, Slot::link, Slot::cta},
    {Slot::hook, Slot::link, Slot::identity, Slot::plot, Slot::tags, Slot::cta},
    {Slot::hook, Slot::identity, Slot::tags, Slot::plot, Slot::link, Slot::cta},
};
}  // namespace teacher_text

// Genre as it reads in a sentence: "crime", "sci-fi", "film noir", "family" (Children), "IMAX".
inline std::string genre_words(std::string_view genre) {
  if (genre == "Sci-Fi") return "sci-fi";
  if (genre == "Film-Noir") return "film noir";
  if (genre == "Children") return "family";
  if (genre == "IMAX") return "IMAX";
  std::string out(genre);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace detail {
inline std::string article_for(std::string_view word) {
  if (word.empty()) return "a";
  const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(word[0])));
  return (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') ? "an" : "a";
}
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}
inline std::string quoted_list(const std::vector<std::string>& values) {
  std::vector<std::string> q;
  for (const auto& v : values) q.push_back("\"" + v + "\"");
  return join_and(q);
}
template <class T>
std::size_t pick(Rng& rng, const std::vector<T>& v) {
  return static_cast<std::size_t>(rng.below(v.size()));
}
}  // namespace detail

// A profile element the link sentence can name.
struct LinkChoice {
  enum class Kind { none, genre, tag, favourite } kind = Kind::none;
  std::string name;    // genre name, tag key or title
  std::string phrase;  // as written: "crime", "\"dark comedy\"", "Heat (1995)"
  cf::Index favourite = -1;
  // The user's strongest liked genres named beside the tie (names, strongest first) and their phrase.
  std::vector<std::string> taste;
  std::string taste_phrase;
  std::string term() const {
    switch (kind) {
      case Kind::genre:
        return "genre:" + name;
      case Kind::tag:
        return "tag:" + name;
      case Kind::favourite:
        return "favourite:" + name;
      case Kind::none:
        break;
    }
    return {};
  }
};

// Every random choice for one pitch, drawn in a fixed order (see the file comment).
struct PitchPlan {
  cf::Index user = 0, item = 0;
  std::size_t order = 0;
  bool with_hook = true, with_tags = true;
  std::size_t hook = 0, identity_vivid = 0, identity_plain = 0, plot = 0, tags_vivid = 0, tags_plain = 0;
  std::size_t link = 0, link_off = 0, cta = 0, adjective = 0;
  std::vector<std::size_t> genres;  // indices into the movie's genres that are stated (<= 2)
  bool with_year = true;
  std::size_t overview_sentence = 0;   // used when the movie has an overview
  std::vector<std::size_t> tags;       // indices into the movie's tag facts that are stated (<= 2)
  LinkChoice link_choice, off_choice;  // off_choice: a disliked genre/tag (kind none if the user has none)
  // The hallucination: which stated fact is swapped for which foreign one (kind none: impossible).
  std::optional<FactKind> swap_kind;
  std::size_t swap_position = 0;  // position among the stated genres/tags
  Claim foreign;                  // the borrowed fact (supported = false)
};

struct TeacherOptions {
  double hook_rate = 0.8;            // clean pitches open with a hook this often
  double tags_rate = 0.75;           // ... state the movie's tags (when it has some) this often
  double two_genres_rate = 0.6;      // ... name two genres (when it has two) this often
  double first_sentence_rate = 0.6;  // the plot sentence is the overview's first this often
  int min_year_gap = 2;              // a hallucinated year differs from the true one by at least this
  int donor_tries = 64;              // random other movies tried when borrowing a fact
};

class Teacher {
 public:
  explicit Teacher(const Catalog& catalog, TeacherOptions options = {})
      : catalog_(&catalog), options_(options) {}

  const Catalog& catalog() const noexcept { return *catalog_; }
  const TeacherOptions& options() const noexcept { return options_; }

  // Draws every choice for a pitch of `item` to `profile`'s user.
  PitchPlan plan(const UserProfile& profile, cf::Index item, Rng& rng) const {
    const auto& movie = catalog_->at(item);
    namespace T = teacher_text;
    PitchPlan p;
    p.user = profile.user;
    p.item = item;
    p.order = detail::pick(rng, T::orders);
    p.with_hook = rng.uniform() < options_.hook_rate;
    p.hook = detail::pick(rng, T::hooks);
    p.identity_vivid = detail::pick(rng, T::identity_vivid);
    p.identity_plain = detail::pick(rng, T::identity_plain);
    p.plot = detail::pick(rng, T::plots);
    p.tags_vivid = detail::pick(rng, T::tags_vivid);
    p.tags_plain = detail::pick(rng, T::tags_plain);
    p.link = static_cast<std::size_t>(rng.below(std::max(T::link_term.size(), T::link_favourite.size())));
    p.link_off = detail::pick(rng, T::link_term);
    p.cta = detail::pick(rng, T::ctas);
    p.adjective = detail::pick(rng, vivid_words());
    // Facts to state.
    const auto n_genres = movie.genres.size();
    if (n_genres > 0) {
      const auto first = static_cast<std::size_t>(rng.below(n_genres));
      p.genres.push_back(first);
      const bool two = rng.uniform() < options_.two_genres_rate;
      if (two && n_genres > 1) p.genres.push_back((first + 1 + rng.below(n_genres - 1)) % n_genres);
      std::sort(p.genres.begin(), p.genres.end());
    } else {
      rng.uniform();  // keep the draw count independent of the movie
    }
    p.with_year = movie.year.has_value();
    const auto n_sentences = movie.overview_sentences.size();
    const bool first_sentence = rng.uniform() < options_.first_sentence_rate;
    const auto other = rng.below(std::max<std::size_t>(1, std::min<std::size_t>(3, n_sentences)));
    p.overview_sentence = first_sentence ? 0 : static_cast<std::size_t>(other);
    const auto tag_facts = tag_fact_indices(movie);
    p.with_tags = !tag_facts.empty() && rng.uniform() < options_.tags_rate;
    if (!tag_facts.empty()) {
      const auto a = static_cast<std::size_t>(rng.below(std::min<std::size_t>(3, tag_facts.size())));
      p.tags.push_back(a);
      if (tag_facts.size() > 1 && rng.uniform() < 0.5)
        p.tags.push_back((a + 1) % std::min<std::size_t>(3, tag_facts.size()));
      std::sort(p.tags.begin(), p.tags.end());
      p.tags.erase(std::unique(p.tags.begin(), p.tags.end()), p.tags.end());
    }
    if (!p.with_tags) p.tags.clear();
    p.link_choice = choose_link(profile, movie, rng);
    p.off_choice = choose_off_link(profile, movie, rng);
    choose_hallucination(p, movie, rng);
    return p;
  }

  // Whether render(plan, d) can carry defect d: a hallucination needs a stated fact to swap and a
  // donor; off_preference needs a disliked genre/tag; generic needs a link to drop.
  bool can_apply(const PitchPlan& p, Defect d) const {
    switch (d) {
      case Defect::hallucinated:
        return p.swap_kind.has_value();
      case Defect::off_preference:
        return p.off_choice.kind != LinkChoice::Kind::none;
      case Defect::generic:
        return p.link_choice.kind != LinkChoice::Kind::none;
      case Defect::bland:
        return true;
    }
    return false;
  }

  // Writes the pitch; `defect` (if any) must satisfy can_apply, else InvalidArgument. A clean plan
  // whose user offers no link at all is labelled generic, since that is what it is.
  Pitch render(const PitchPlan& p, std::optional<Defect> defect = std::nullopt) const {
    if (defect && !can_apply(p, *defect))
      fail<InvalidArgument>("teacher: defect ", to_string(*defect), " cannot be applied to item ", p.item,
                            " for user ", p.user);
    namespace T = teacher_text;
    const auto& movie = catalog_->at(p.item);
    const bool bland = defect == Defect::bland;
    const bool hallucinate = defect == Defect::hallucinated;
    Pitch out;
    out.user = p.user;
    out.item = p.item;
    const std::string adjective = vivid_words()[p.adjective];
    for (const Slot slot : T::orders[p.order]) {
      Sentence s;
      s.slot = slot;
      switch (slot) {
        case Slot::hook: {
          if (bland || !p.with_hook) continue;
          s.text = T::hooks[p.hook];
          s.pattern = "hook/" + std::to_string(p.hook);
          out.appeal.push_back("hook");
          break;
        }
        case Slot::identity: {
          std::vector<Claim> genre_claims;
          for (auto g : p.genres) {
            const auto& name = movie.genres[g];
            genre_claims.push_back(
                {fact_id(movie.movie_id, FactKind::genre, name), FactKind::genre, name, true});
          }
          std::optional<Claim> year_claim;
          if (p.with_year) {
            const auto y = std::to_string(*movie.year);
            year_claim = Claim{fact_id(movie.movie_id, FactKind::year, y), FactKind::year, y, true};
          }
          if (hallucinate && p.swap_kind == FactKind::genre) genre_claims[p.swap_position] = p.foreign;
          if (hallucinate && p.swap_kind == FactKind::year) year_claim = p.foreign;
          std::vector<std::string> words;
          for (const auto& c : genre_claims) words.push_back(genre_words(c.value));
          const std::string genres = detail::join_and(words);
          std::string tmpl;
          if (year_claim && !genre_claims.empty()) {
            tmpl = bland ? T::identity_plain[p.identity_plain] : T::identity_vivid[p.identity_vivid];
            s.pattern = bland ? "identity/p" + std::to_string(p.identity_plain)
                              : "identity/v" + std::to_string(p.identity_vivid);
          } else {
            const std::size_t k = genre_claims.empty() ? 1 : 0;
            tmpl = bland ? T::identity_plain_partial[k] : T::identity_vivid_partial[k];
            s.pattern = std::string(bland ? "identity/p" : "identity/v") + (k ? "-nogenre" : "-noyear");
            if (!year_claim && genre_claims.empty())
              tmpl = bland ? "{title} is a film." : "{title} is {a_adj} film.";
          }
          detail::replace_all(tmpl, "{a_adj}", detail::article_for(adjective) + " " + adjective);
          detail::replace_all(tmpl, "{adj}", adjective);
          detail::replace_all(tmpl, "{a}", detail::article_for(genres));
          detail::replace_all(tmpl, "{genres}", genres);
          detail::replace_all(tmpl, "{year}", year_claim ? year_claim->value : std::string());
          s.text = tmpl;
          // Claims in the order they appear in most templates.
          if (year_claim) s.claims.push_back(*year_claim);
          s.claims.insert(s.claims.end(), genre_claims.begin(), genre_claims.end());
          if (!bland) out.appeal.push_back("vivid:" + adjective);
          break;
        }
        case Slot::plot: {
          if (!movie.has_overview() || movie.overview_sentences.empty()) continue;
          const auto k = std::min(p.overview_sentence, movie.overview_sentences.size() - 1);
          std::string tmpl = T::plots[p.plot];
          detail::replace_all(tmpl, "{sentence}", movie.overview_sentences[k]);
          s.text = tmpl;
          s.pattern = "plot/" + std::to_string(p.plot);
          const auto id = fact_id(movie.movie_id, FactKind::overview, std::to_string(k));
          s.claims.push_back({id, FactKind::overview, movie.overview_sentences[k], true});
          break;
        }
        case Slot::tags: {
          if (p.tags.empty()) continue;
          const auto tag_facts = tag_fact_indices(movie);
          std::vector<Claim> claims;
          for (auto t : p.tags) {
            const auto& f = movie.facts[tag_facts[t]];
            claims.push_back({f.id, FactKind::tag, f.value, true});
          }
          if (hallucinate && p.swap_kind == FactKind::tag) claims[p.swap_position] = p.foreign;
          std::vector<std::string> values;
          for (const auto& c : claims) values.push_back(c.value);
          std::string tmpl = bland ? T::tags_plain[p.tags_plain] : T::tags_vivid[p.tags_vivid];
          s.pattern =
              bland ? "tags/p" + std::to_string(p.tags_plain) : "tags/v" + std::to_string(p.tags_vivid);
          detail::replace_all(tmpl, "{tags}", detail::quoted_list(values));
          s.text = tmpl;
          s.claims = std::move(claims);
          break;
        }
        case Slot::link: {
          if (defect == Defect::generic) continue;
          const LinkChoice& choice = defect == Defect::off_preference ? p.off_choice : p.link_choice;
          if (choice.kind == LinkChoice::Kind::none) continue;
          std::string tmpl;
          if (choice.kind == LinkChoice::Kind::favourite) {
            const bool taste = !choice.taste_phrase.empty();
            const auto& templates = taste ? T::link_favourite_taste : T::link_favourite;
            const auto k = p.link % templates.size();
            tmpl = templates[k];
            detail::replace_all(tmpl, "{fav}", choice.phrase);
            detail::replace_all(tmpl, "{taste}", choice.taste_phrase);
            s.pattern = (taste ? "link/favourite-taste/" : "link/favourite/") + std::to_string(k);
          } else {
            const auto k = (defect == Defect::off_preference ? p.link_off : p.link) % T::link_term.size();
            tmpl = T::link_term[k];
            detail::replace_all(tmpl, "{term}", choice.phrase);
            s.pattern = "link/term/" + std::to_string(k);
          }
          s.text = tmpl;
          out.link_terms.push_back(choice.term());
          for (const auto& g : choice.taste) out.link_terms.push_back("genre:" + g);
          break;
        }
        case Slot::cta: {
          if (bland) continue;
          s.text = T::ctas[p.cta];
          s.pattern = "cta/" + std::to_string(p.cta);
          out.appeal.push_back("cta");
          break;
        }
      }
      detail::replace_all(s.text, "{title}", movie.title);
      out.sentences.push_back(std::move(s));
    }
    for (std::size_t k = 0; k < out.sentences.size(); ++k) out.text += (k ? " " : "") + out.sentences[k].text;
    for (const auto& s : out.sentences)
      for (const auto& c : s.claims)
        if (c.supported) out.facts.push_back(c.fact_id);
    if (defect) out.defects.push_back(*defect);
    if (!defect && p.link_choice.kind == LinkChoice::Kind::none) out.defects.push_back(Defect::generic);
    return out;
  }

  // plan + render in one call.
  Pitch write(const UserProfile& profile, cf::Index item, Rng& rng,
              std::optional<Defect> defect = std::nullopt) const {
    return render(plan(profile, item, rng), defect);
  }

 private:
  static std::vector<std::size_t> tag_fact_indices(const CatalogItem& movie) {
    std::vector<std::size_t> out;
    for (std::size_t k = 0; k < movie.facts.size(); ++k)
      if (movie.facts[k].kind == FactKind::tag) out.push_back(k);
    return out;
  }

  // A liked genre the movie has; else a liked tag it has; else a favourite other than the movie
  // (preferring those closest in genre); chosen at random among the candidates of the first
  // non-empty kind.
  LinkChoice choose_link(const UserProfile& profile, const CatalogItem& movie, Rng& rng) const {
    std::vector<LinkChoice> genre, tag, favourite;
    for (const auto& a : profile.liked_genres)
      if (movie.has_genre(a.name))
        genre.push_back({LinkChoice::Kind::genre, a.name, genre_words(a.name), -1, {}, {}});
    for (const auto& a : profile.liked_tags)
      if (movie.has_tag_key(a.name))
        tag.push_back({LinkChoice::Kind::tag, a.name, "\"" + a.name + "\"", -1, {}, {}});
    // Favourites that share the most genres with the movie (any favourite if none shares one).
    std::size_t best_shared = 0;
    for (auto f : profile.favourites) {
      if (f == movie.item) continue;
      const auto& fav = catalog_->at(f);
      const auto shared = static_cast<std::size_t>(std::count_if(
          fav.genres.begin(), fav.genres.end(), [&](const std::string& g) { return movie.has_genre(g); }));
      if (shared < best_shared) continue;
      if (shared > best_shared) favourite.clear(), best_shared = shared;
      favourite.push_back(
          {LinkChoice::Kind::favourite, std::to_string(fav.movie_id), fav.title_with_year(), f, {}, {}});
    }
    const auto draw = rng.below(1u << 16);  // one draw whatever the candidates
    for (const auto* list : {&genre, &tag, &favourite})
      if (!list->empty()) return with_taste((*list)[static_cast<std::size_t>(draw % list->size())], profile);
    return {};
  }

  // Names the user's strongest liked genres beside the tie, so that the link sentence says who the
  // user is and not only what the movie is (the tie alone is mostly predictable from the movie's own
  // genres): a genre tie gets the strongest other liked genre, in the user's order ("war and crime"); a
  // tag tie the strongest liked genre ("war and \"heist\""); a favourite the two strongest ({taste}).
  static LinkChoice with_taste(LinkChoice c, const UserProfile& profile) {
    const std::size_t want = c.kind == LinkChoice::Kind::favourite ? 2 : 1;
    for (const auto& a : profile.liked_genres)
      if (c.taste.size() < want && !(c.kind == LinkChoice::Kind::genre && a.name == c.name))
        c.taste.push_back(a.name);
    if (c.taste.empty()) return c;
    std::vector<std::string> words;
    for (const auto& g : c.taste) words.push_back(genre_words(g));
    switch (c.kind) {
      case LinkChoice::Kind::genre: {
        // Strongest first: the tie leads when it outranks the added genre.
        const auto rank = [&](const std::string& name) {
          return std::find_if(profile.liked_genres.begin(), profile.liked_genres.end(),
                              [&](const Affinity& a) { return a.name == name; }) -
                 profile.liked_genres.begin();
        };
        c.phrase = rank(c.name) < rank(c.taste[0]) ? detail::join_and({c.phrase, words[0]})
                                                   : detail::join_and({words[0], c.phrase});
        break;
      }
      case LinkChoice::Kind::tag:
        c.phrase = detail::join_and({words[0], c.phrase});
        break;
      case LinkChoice::Kind::favourite:
        c.taste_phrase = detail::join_and(words);
        break;
      case LinkChoice::Kind::none:
        break;
    }
    return c;
  }

  // A disliked genre/tag, preferring one the movie really has (then the tie is literally true).
  LinkChoice choose_off_link(const UserProfile& profile, const CatalogItem& movie, Rng& rng) const {
    std::vector<LinkChoice> shared, other;
    for (const auto& a : profile.disliked_genres)
      (movie.has_genre(a.name) ? shared : other)
          .push_back({LinkChoice::Kind::genre, a.name, genre_words(a.name), -1, {}, {}});
    for (const auto& a : profile.disliked_tags)
      (movie.has_tag_key(a.name) ? shared : other)
          .push_back({LinkChoice::Kind::tag, a.name, "\"" + a.name + "\"", -1, {}, {}});
    const auto draw = rng.below(1u << 16);
    if (!shared.empty()) return shared[static_cast<std::size_t>(draw % shared.size())];
    if (!other.empty()) return other[static_cast<std::size_t>(draw % other.size())];
    return {};
  }

  // Picks a stated genre, year or tag and a donor movie whose fact of that kind is foreign to `movie`.
  void choose_hallucination(PitchPlan& p, const CatalogItem& movie, Rng& rng) const {
    std::vector<FactKind> kinds;
    if (!p.genres.empty()) kinds.push_back(FactKind::genre);
    if (p.with_year) kinds.push_back(FactKind::year);
    if (!p.tags.empty()) kinds.push_back(FactKind::tag);
    const auto kind_draw = rng.below(1u << 16);
    const auto pos_draw = rng.below(1u << 16);
    // Drawn last in the plan, so the variable number of donor draws moves no other choice.
    if (kinds.empty() || catalog_->size() < 2) return;
    const FactKind kind = kinds[static_cast<std::size_t>(kind_draw % kinds.size())];
    for (int attempt = 0; attempt < options_.donor_tries; ++attempt) {
      const auto& donor = catalog_->items()[static_cast<std::size_t>(rng.below(catalog_->size()))];
      if (donor.item == movie.item) continue;
      for (const auto& f : donor.facts) {
        if (f.kind != kind) continue;
        bool foreign = false;
        if (kind == FactKind::genre) foreign = !movie.has_genre(f.value);
        if (kind == FactKind::year)
          foreign = movie.year && std::abs(std::stoi(f.value) - *movie.year) >= options_.min_year_gap;
        if (kind == FactKind::tag) foreign = !movie.has_tag_key(detail::tag_key(f.value));
        if (!foreign) continue;
        p.swap_kind = kind;
        p.foreign = {f.id, kind, f.value, false};
        const auto n = kind == FactKind::genre ? p.genres.size() : kind == FactKind::tag ? p.tags.size() : 1;
        p.swap_position = static_cast<std::size_t>(pos_draw % n);
        return;
      }
    }
  }

  const Catalog* catalog_;
  TeacherOptions options_;
};

}  // namespace p4lm::data
