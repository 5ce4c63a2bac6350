#pragma once
// MovieLens in the ml-25m CSV schema (ml-latest-small, ml-latest, ml-20m/25m/32m share it):
//   movies.csv  movieId,title,genres        ratings.csv  userId,movieId,rating,timestamp
//   tags.csv    userId,movieId,tag,timestamp links.csv   movieId,imdbId,tmdbId
//   genome-scores.csv movieId,tagId,relevance + genome-tags.csv tagId,tag (ml-25m, optional)
// Movies get dense item indices in movies.csv order; users get dense indices in order of first
// appearance in ratings.csv. TMDB overviews join through links.csv's tmdbId.
//
//   auto ml = p4lm::cf::load_movielens(p4lm::cf::bundled_movielens(),
//                                      {.overviews = p4lm::cf::bundled_overviews()});
//
// A loader either returns everything it was asked for or throws (ParseError with file, line and
// field for malformed content); nothing half-loaded escapes.
//
// ratings.csv is held to the MovieLens schema: ids are integers (1.5 is an error, never truncated),
// every rating is a multiple of 0.5 in [0.5, 5.0] ("5-star scale, with half-star increments"; turn
// off with LoadOptions::half_stars = false for other scales, which must still be finite), a user rates
// a movie at most once (a duplicate names both lines), and there is at least one rating.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/io/csv.hpp"

namespace p4lm::cf {

// A MovieLens title split into name and year(s): "Heat (1995)" -> {"Heat", 1995},
// "Death Note: Desu nôto (2006–2007)" -> {"Death Note: Desu nôto", 2006, 2007}, "Moonlight" -> {"Moonlight"}.
// Trailing spaces are dropped; parentheses that are not a year stay part of the name
// ("Assembly (Ji jie hao) (2007)" -> {"Assembly (Ji jie hao)", 2007}).
struct Title {
  std::string name;
  std::optional<int> year;
  std::optional<int> year_end;  // for series, "(2006–2007)"; absent for "(2006-)" or a single year
};

namespace detail {
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
inline bool four_digits(std::string_view s, int& year) {
  if (s.size() != 4) return false;
  year = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    year = year * 10 + (c - '0');
  }
  return true;
}
}  // namespace detail

inline Title parse_title(std::string_view raw) {
  const std::string_view text = detail::trim(raw);
  Title out{std::string(text), std::nullopt, std::nullopt};
  if (text.empty() || text.back() != ')') return out;
  const auto open = text.rfind('(');
  if (open == std::string_view::npos) return out;
  const std::string_view inside = text.substr(open + 1, text.size() - open - 2);
  int first = 0, second = 0;
  if (!detail::four_digits(inside.substr(0, 4), first)) return out;
  std::string_view rest = inside.substr(4);
  if (!rest.empty()) {
    // Range separator: '-' or the en dash U+2013 (UTF-8 E2 80 93), then an optional end year.
    if (rest.front() == '-')
      rest.remove_prefix(1);
    else if (rest.starts_with("\xE2\x80\x93"))
      rest.remove_prefix(3);
    else
      return out;
    if (!rest.empty()) {
      if (!detail::four_digits(rest, second)) return out;
      out.year_end = second;
    }
  }
  out.year = first;
  out.name = std::string(detail::trim(text.substr(0, open)));
  return out;
}

struct Movie {
  std::int64_t movie_id = 0;
  std::string title;  // without the year
  std::optional<int> year, year_end;
  std::vector<std::string> genres;  // empty for "(no genres listed)"
  std::string imdb_id;              // as in links.csv (digits, leading zeros kept); empty if absent
  std::optional<std::int64_t> tmdb_id;
  std::string overview;  // TMDB overview; empty if none was joined
};

struct Tag {
  std::int64_t user_id = 0;  // MovieLens userId (taggers need not have rated anything)
  Index item = 0;
  std::string tag;
  std::int64_t timestamp = 0;
};

// Tag genome: relevance[row, t] of genome tag t for item items[row].
struct Genome {
  std::vector<std::string> tags;
  std::vector<Index> items;
  xt::xtensor<float, 2> relevance;
};

struct MovieLens {
  std::filesystem::path folder;
  IdMap users, items;         // MovieLens userId / movieId <-> dense index
  std::vector<Movie> movies;  // by item index
  Ratings ratings;            // indices into users / items
  std::vector<Tag> tags;      // empty unless loaded
  std::optional<Genome> genome;

  std::size_t overview_count() const {
    std::size_t n = 0;
    for (const auto& m : movies) n += !m.overview.empty();
    return n;
  }
};

struct LoadOptions {
  std::filesystem::path overviews{};  // CSV with tmdbId,overview columns; empty: no overviews
  bool tags = true;                   // read tags.csv if present
  bool genome = true;                 // read genome-*.csv if present
  bool progress = false;              // progress lines on stderr (large files)
  bool half_stars = true;             // ratings must be 0.5, 1.0, ..., 5.0 (the MovieLens scale)
};

inline std::filesystem::path bundled_movielens() {
  return data_path("movielens/ml-latest-small");
}
inline std::filesystem::path bundled_overviews() {
  return data_path("plots/ml-latest-small_overviews.csv");
}

namespace detail {

template <class F>
void for_each_row(io::CsvReader& csv, bool progress, F&& f) {
  std::optional<Progress> bar;
  if (progress)
    bar.emplace("read " + csv.path().filename().string(), std::filesystem::file_size(csv.path()) >> 20,
                "MiB");
  io::CsvRow row;
  std::uint64_t reported = 0;
  while (csv.next(row)) {
    f(row);
    if (bar && (csv.bytes_read() >> 20) > reported) {
      bar->advance((csv.bytes_read() >> 20) - reported);
      reported = csv.bytes_read() >> 20;
    }
  }
}

inline void read_movies(const std::filesystem::path& path, MovieLens& ml) {
  io::CsvReader csv(path);
  const auto c_id = csv.column("movieId"), c_title = csv.column("title"), c_genres = csv.column("genres");
  for_each_row(csv, false, [&](const io::CsvRow& row) {
    Movie m;
    m.movie_id = csv.get<std::int64_t>(row, c_id);
    if (ml.items.find(m.movie_id))
      throw ParseError(path, row.line(), "movieId", "duplicate movieId " + std::to_string(m.movie_id));
    auto title = parse_title(row[c_title]);
    m.title = std::move(title.name);
    m.year = title.year;
    m.year_end = title.year_end;
    std::string_view genres = row[c_genres];
    if (genres != "(no genres listed)") {
      while (!genres.empty()) {
        const auto bar = genres.find('|');
        m.genres.emplace_back(genres.substr(0, bar));
        if (bar == std::string_view::npos) break;
        genres.remove_prefix(bar + 1);
      }
    }
    ml.items.insert(m.movie_id);
    ml.movies.push_back(std::move(m));
  });
}

inline Index item_of(const io::CsvReader& csv, const io::CsvRow& row, std::size_t col, const MovieLens& ml) {
  const auto id = csv.get<std::int64_t>(row, col);
  const auto item = ml.items.find(id);
  if (!item)
    throw ParseError(csv.path(), row.line(), "movieId",
                     "movie " + std::to_string(id) + " is not in movies.csv");
  return *item;
}

// Line numbers of data records `a` and `b` (0-based, in file order): a second pass, for error messages.
inline std::pair<std::size_t, std::size_t> record_lines(const std::filesystem::path& path, std::size_t a,
                                                        std::size_t b) {
  io::CsvReader csv(path);
  io::CsvRow row;
  std::pair<std::size_t, std::size_t> lines{0, 0};
  for (std::size_t k = 0; csv.next(row) && k <= std::max(a, b); ++k) {
    if (k == a) lines.first = row.line();
    if (k == b) lines.second = row.line();
  }
  return lines;
}

[[noreturn]] inline void duplicate_rating(const std::filesystem::path& path, std::size_t line,
                                          std::size_t first_line, std::int64_t user_id,
                                          std::int64_t movie_id) {
  throw ParseError(path, line, "movieId",
                   "user " + std::to_string(user_id) + " rates movie " + std::to_string(movie_id) +
                       " twice (first on line " + std::to_string(first_line) + ", again on line " +
                       std::to_string(line) + ")");
}

inline void read_ratings(const std::filesystem::path& path, MovieLens& ml, const LoadOptions& options) {
  const bool progress = options.progress;
  io::CsvReader csv(path);
  const auto c_user = csv.column("userId"), c_item = csv.column("movieId"), c_rating = csv.column("rating");
  const auto c_time = csv.column("timestamp");
  // ~27 bytes per line in MovieLens files: reserving avoids regrowing 25M-element arrays.
  const auto guess = static_cast<std::size_t>(std::filesystem::file_size(path) / 26);
  ml.ratings.reserve(guess);
  // movieIds are small positive numbers (ml-25m: up to 209,171): a flat table beats hashing 25M times.
  std::int64_t max_id = 0;
  for (const auto id : ml.items.ids()) max_id = std::max(max_id, id);
  std::vector<Index> flat;
  if (max_id < (std::int64_t{1} << 26)) {
    flat.assign(static_cast<std::size_t>(max_id) + 1, -1);
    for (std::size_t i = 0; i < ml.items.size(); ++i)
      if (ml.items.ids()[i] >= 0) flat[static_cast<std::size_t>(ml.items.ids()[i])] = static_cast<Index>(i);
  }
  auto item_index = [&](const io::CsvRow& row) {
    if (!flat.empty()) {
      const auto id = csv.get<std::int64_t>(row, c_item);
      if (id >= 0 && static_cast<std::size_t>(id) < flat.size() && flat[static_cast<std::size_t>(id)] >= 0)
        return flat[static_cast<std::size_t>(id)];
    }
    return item_of(csv, row, c_item, ml);  // the slow path also produces the error
  };
  std::int64_t last_user = std::numeric_limits<std::int64_t>::min();
  Index last_index = 0;
  // Duplicates: MovieLens files are grouped by user, so a per-item stamp of the current user's block
  // finds them in one pass; a file that is not grouped gets a sort at the end instead.
  std::vector<std::int64_t> stamp(ml.items.size(), -1);
  std::vector<std::size_t> stamp_line(ml.items.size(), 0);
  std::int64_t block = -1;
  bool grouped = true;
  for_each_row(csv, progress, [&](const io::CsvRow& row) {
    const auto user_id = csv.get<std::int64_t>(row, c_user);
    if (user_id != last_user) {  // files are grouped by user: skip most hash lookups
      const auto known = ml.users.size();
      last_index = ml.users.insert(user_id);
      if (ml.users.size() == known) grouped = false;  // this user's ratings came earlier too
      last_user = user_id;
      ++block;
    }
    const auto rating = csv.get<float>(row, c_rating);
    if (options.half_stars) {
      if (!(rating >= 0.5f && rating <= 5.0f && rating * 2.0f == std::round(rating * 2.0f)))
        throw ParseError(path, row.line(), "rating",
                         "rating " + std::string(row[c_rating]) +
                             " is not on the MovieLens scale (0.5 to 5.0 in steps of 0.5)");
    } else if (!std::isfinite(rating)) {
      throw ParseError(path, row.line(), "rating", "rating " + std::string(row[c_rating]) + " is not finite");
    }
    const Index item = item_index(row);
    const auto at = static_cast<std::size_t>(item);
    if (stamp[at] == block) duplicate_rating(path, row.line(), stamp_line[at], user_id, ml.items.id(item));
    stamp[at] = block;
    stamp_line[at] = row.line();
    ml.ratings.add(last_index, item, rating, csv.get<std::int64_t>(row, c_time));
  });
  if (ml.ratings.empty())
    throw ParseError(path, 0, "", "no ratings (a header line only?): training and evaluation need some");
  if (!grouped) {
    std::vector<std::pair<std::uint64_t, std::size_t>> keys(ml.ratings.size());
    for (std::size_t k = 0; k < keys.size(); ++k)
      keys[k] = {(static_cast<std::uint64_t>(ml.ratings.user[k]) << 32) |
                     static_cast<std::uint32_t>(ml.ratings.item[k]),
                 k};
    std::sort(keys.begin(), keys.end());
    for (std::size_t k = 1; k < keys.size(); ++k)
      if (keys[k].first == keys[k - 1].first) {
        const auto [first, again] = record_lines(path, keys[k - 1].second, keys[k].second);
        const auto r = keys[k].second;
        duplicate_rating(path, again, first, ml.users.id(ml.ratings.user[r]),
                         ml.items.id(ml.ratings.item[r]));
      }
  }
  ml.ratings.n_users = ml.users.size();
  ml.ratings.n_items = ml.items.size();
}

inline void read_links(const std::filesystem::path& path, MovieLens& ml) {
  io::CsvReader csv(path);
  const auto c_item = csv.column("movieId"), c_imdb = csv.column("imdbId"), c_tmdb = csv.column("tmdbId");
  for_each_row(csv, false, [&](const io::CsvRow& row) {
    auto& movie = ml.movies[static_cast<std::size_t>(item_of(csv, row, c_item, ml))];
    movie.imdb_id = std::string(row[c_imdb]);
    if (!row[c_tmdb].empty()) movie.tmdb_id = csv.get<std::int64_t>(row, c_tmdb);
  });
}

inline void read_tags(const std::filesystem::path& path, MovieLens& ml) {
  io::CsvReader csv(path);
  const auto c_user = csv.column("userId"), c_item = csv.column("movieId"), c_tag = csv.column("tag");
  const auto c_time = csv.column("timestamp");
  for_each_row(csv, false, [&](const io::CsvRow& row) {
    ml.tags.push_back({csv.get<std::int64_t>(row, c_user), item_of(csv, row, c_item, ml),
                       std::string(row[c_tag]), csv.get<std::int64_t>(row, c_time)});
  });
}

inline Genome read_genome(const std::filesystem::path& tags_path, const std::filesystem::path& scores_path,
                          const MovieLens& ml, bool progress) {
  Genome g;
  std::unordered_map<std::int64_t, std::size_t> tag_col;
  {
    io::CsvReader csv(tags_path);
    const auto c_id = csv.column("tagId"), c_tag = csv.column("tag");
    for_each_row(csv, false, [&](const io::CsvRow& row) {
      tag_col.emplace(csv.get<std::int64_t>(row, c_id), g.tags.size());
      g.tags.emplace_back(row[c_tag]);
    });
  }
  std::vector<float> values;
  std::unordered_map<Index, std::size_t> item_row;
  io::CsvReader csv(scores_path);
  const auto c_item = csv.column("movieId"), c_tag = csv.column("tagId"), c_rel = csv.column("relevance");
  const std::size_t n_tags = g.tags.size();
  for_each_row(csv, progress, [&](const io::CsvRow& row) {
    const Index item = item_of(csv, row, c_item, ml);
    const auto [it, inserted] = item_row.try_emplace(item, g.items.size());
    if (inserted) {
      g.items.push_back(item);
      values.resize(values.size() + n_tags, 0.0f);
    }
    const auto tag = tag_col.find(csv.get<std::int64_t>(row, c_tag));
    if (tag == tag_col.end())
      throw ParseError(scores_path, row.line(), "tagId", "tag not in genome-tags.csv");
    values[it->second * n_tags + tag->second] = csv.get<float>(row, c_rel);
  });
  g.relevance = xt::xtensor<float, 2>::from_shape({g.items.size(), n_tags});
  std::copy(values.begin(), values.end(), g.relevance.begin());
  return g;
}

}  // namespace detail

// Joins overviews (CSV with columns tmdbId and overview, e.g. data/plots/*.csv) to the movies through
// their tmdbId; returns how many movies got one. Replaces earlier overviews only where one is found.
inline std::size_t attach_overviews(MovieLens& ml, const std::filesystem::path& path) {
  io::CsvReader csv(path);
  const auto c_tmdb = csv.column("tmdbId"), c_text = csv.column("overview");
  std::unordered_map<std::int64_t, std::string> by_tmdb;
  detail::for_each_row(csv, false, [&](const io::CsvRow& row) {
    by_tmdb.emplace(csv.get<std::int64_t>(row, c_tmdb), std::string(row[c_text]));
  });
  std::size_t matched = 0;
  for (auto& movie : ml.movies) {
    if (!movie.tmdb_id) continue;
    const auto it = by_tmdb.find(*movie.tmdb_id);
    if (it == by_tmdb.end() || it->second.empty()) continue;
    movie.overview = it->second;
    ++matched;
  }
  return matched;
}

// Loads a MovieLens folder (movies.csv and ratings.csv required; links, tags, genome if present).
inline MovieLens load_movielens(const std::filesystem::path& folder, const LoadOptions& options = {}) {
  namespace fs = std::filesystem;
  for (const char* required : {"movies.csv", "ratings.csv"})
    if (!fs::is_regular_file(folder / required))
      fail<DataNotFound>(folder.string(), ": not a MovieLens folder (", required, " missing)");
  MovieLens ml;
  ml.folder = folder;
  detail::read_movies(folder / "movies.csv", ml);
  detail::read_ratings(folder / "ratings.csv", ml, options);
  if (fs::is_regular_file(folder / "links.csv")) detail::read_links(folder / "links.csv", ml);
  if (options.tags && fs::is_regular_file(folder / "tags.csv")) detail::read_tags(folder / "tags.csv", ml);
  if (options.genome && fs::is_regular_file(folder / "genome-scores.csv") &&
      fs::is_regular_file(folder / "genome-tags.csv"))
    ml.genome =
        detail::read_genome(folder / "genome-tags.csv", folder / "genome-scores.csv", ml, options.progress);
  if (!options.overviews.empty()) {
    if (!fs::is_regular_file(folder / "links.csv"))
      fail<DataNotFound>(folder.string(), ": overviews join through links.csv, which is missing");
    attach_overviews(ml, options.overviews);
  }
  return ml;
}

}  // namespace p4lm::cf
