#pragma once
// Configuration structs reflected with Boost.Hana: one definition gives command-line flags, their
// defaults, help text and the JSON dump of a run's config.
//
//   struct TrainConfig {
//     Param<int> steps{100, "optimizer steps"};
//     Param<std::string> out{"runs/train", "output folder"};
//   };
//   BOOST_HANA_ADAPT_STRUCT(TrainConfig, steps, out);
//
//   auto config = p4lm::parse_flags<TrainConfig>(args);   // --steps 200 --out=/tmp/x
//   std::cout << p4lm::flags_help<TrainConfig>();          // --steps <int>  optimizer steps (default 100)
//   nlohmann::json j = p4lm::to_json(config);              // {"steps":200,"out":"/tmp/x"}
//
// Related fields can live in a group, an adapted struct of Params that is a member of the config: its
// fields stay top-level flags and JSON keys (`--response-length`, not `--response.response-length`).
//
//   struct Shaping { Param<long> response_length{64, "new tokens"}; };
//   BOOST_HANA_ADAPT_STRUCT(Shaping, response_length);
//   struct RlConfig { Param<long> iterations{100, "RL iterations"}; Shaping response; };
//   BOOST_HANA_ADAPT_STRUCT(RlConfig, iterations, response);   // *c.response.response_length
//
// (BOOST_HANA_ADAPT_STRUCT rather than BOOST_HANA_DEFINE_STRUCT because the latter cannot carry the
// default member initializers that hold each field's default and help text.)
//
// Field `max_new_tokens` is the flag `--max-new-tokens`; bools are `--name`, `--no-name`,
// `--name=true|false` or `--name true|false`; vectors are comma-separated (`--ids 1,2,3`).
//
// Numbers are checked where they enter, once for every command: a floating-point field never accepts
// NaN or infinity, and a field declared with a range refuses values outside it, naming the flag
// (parse_flags) or the field (from_json):
//
//   Param<double> lr{3e-4, "peak learning rate", above(0)};           // (0, inf)
//   Param<double> test_fraction{0.2, "held-out share", inside(0, 1)};  // (0, 1)
//   Param<int> threads{0, "OpenMP threads (0: default)", between(0, 1024)};

#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"

namespace p4lm {

// The values a numeric Param accepts (every element, for a list): [lo, hi], either end open.
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  constexpr bool contains(double x) const noexcept {
    return (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  }
  // "must be > 0", "must be in [0, 1024]", "must be in (0, 1)".
  std::string describe() const {
    std::ostringstream os;
    os.precision(12);  // 0.99 reads 0.99, 1e6 reads 1000000
    if (hi == std::numeric_limits<double>::infinity())
      os << "must be " << (lo_open ? "> " : ">= ") << lo;
    else if (lo == -std::numeric_limits<double>::infinity())
      os << "must be " << (hi_open ? "< " : "<= ") << hi;
    else
      os << "must be in " << (lo_open ? '(' : '[') << lo << ", " << hi << (hi_open ? ')' : ']');
    return os.str();
  }
};
constexpr Range at_least(double lo) noexcept {
  return {lo, std::numeric_limits<double>::infinity(), false, false};
}
constexpr Range above(double lo) noexcept {
  return {lo, std::numeric_limits<double>::infinity(), true, false};
}
constexpr Range between(double lo, double hi) noexcept {
  return {lo, hi, false, false};
}  // [lo, hi]
constexpr Range inside(double lo, double hi) noexcept {
  return {lo, hi, true, true};
}  // (lo, hi)

// A configuration value with its help text (and, for numbers, an optional Range). Reads like the
// value it holds.
template <class T>
struct Param {
  using value_type = T;
  T value{};
  const char* help = "";
  Range range{};

  operator const T&() const noexcept { return value; }  // NOLINT: implicit by design
  const T& operator*() const noexcept { return value; }
  T& operator*() noexcept { return value; }
  const T* operator->() const noexcept { return &value; }
  Param& operator=(const T& v) {
    value = v;
    return *this;
  }
};

namespace detail {

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

inline std::string flag_name(std::string_view field) {
  std::string name(field);
  for (char& c : name)
    if (c == '_') c = '-';
  return name;
}

template <class T>
constexpr const char* type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_integral_v<T>)
    return "int";
  else if constexpr (std::is_floating_point_v<T>)
    return "number";
  else if constexpr (std::is_same_v<T, std::filesystem::path>)
    return "path";
  else if constexpr (is_vector<T>::value)
    return "list";
  else
    return "text";
}

inline bool is_bool_text(std::string_view text) {
  for (const char* word : {"true", "false", "1", "0", "yes", "no", "on", "off"})
    if (text == word) return true;
  return false;
}

template <class T>
T parse_value(std::string_view flag, std::string_view text) {
  auto bad = [&]() -> T {
    fail<UsageError>("--", flag, ": expected ", type_name<T>(), ", got '", text, "'");
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "0" || text == "no" || text == "off") return false;
    return bad();
  } else if constexpr (std::is_arithmetic_v<T>) {
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty()) return bad();
    return value;
  } else if constexpr (is_vector<T>::value) {
    T values;
    std::size_t start = 0;
    while (start <= text.size() && !text.empty()) {
      const auto comma = text.find(',', start);
      const auto end = comma == std::string_view::npos ? text.size() : comma;
      values.push_back(parse_value<typename T::value_type>(flag, text.substr(start, end - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return values;
  } else {
    return T(std::string(text));
  }
}

template <class T>
std::string show_value(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    std::ostringstream os;
    os << value;
    return os.str();
  } else if constexpr (is_vector<T>::value) {
    std::string out;
    for (const auto& v : value) out += (out.empty() ? "" : ",") + show_value(v);
    return out;
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return value.string();
  } else {
    return std::string(value);
  }
}

// Why `value` cannot go into a field with range `range`, or "" if it can (NaN and infinity never can).
template <class T>
std::string value_problem(const T& value, const Range& range) {
  if constexpr (is_vector<T>::value) {
    for (const auto& v : value)
      if (auto problem = value_problem(v, range); !problem.empty()) return problem;
    return {};
  } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    if constexpr (std::is_floating_point_v<T>)
      if (!std::isfinite(value)) return "must be a finite number, got " + show_value(value);
    if (!range.contains(static_cast<double>(value))) return range.describe() + ", got " + show_value(value);
    return {};
  } else {
    return {};
  }
}

template <class T>
nlohmann::json json_value(const T& value) {
  if constexpr (std::is_same_v<T, std::filesystem::path>)
    return value.string();
  else
    return value;
}

// An integer from JSON, refusing what nlohmann would silently convert (1.5 -> 1, -1 -> 2^64 - 1).
template <class T>
T json_integer(const nlohmann::json& value, std::string_view key) {
  if (value.is_number_unsigned()) {
    const auto u = value.template get<std::uint64_t>();
    if (std::cmp_less_equal(u, std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (value.is_number_integer()) {
    const auto v = value.template get<std::int64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  } else {
    fail<InvalidArgument>("config: key '", key, "': expected an integer, got ", value.dump());
  }
  fail<InvalidArgument>("config: key '", key, "': ", value.dump(), " is out of range for this field");
}

}  // namespace detail

// Calls f(field_name, param) for every reflected field of config, in order. A member that is itself
// an adapted struct (a group of related Params) is walked in place: its fields are flags and JSON keys
// of the enclosing config like any other, so a group changes neither the command line nor config.json.
// Groups are how a config outgrows BOOST_HANA_ADAPT_STRUCT's limit of 39 members.
template <class Config, class F>
void for_each_param(Config& config, F&& f) {
  boost::hana::for_each(boost::hana::accessors<std::remove_const_t<Config>>(), [&](auto accessor) {
    auto& member = boost::hana::second(accessor)(config);
    if constexpr (boost::hana::Struct<std::remove_cvref_t<decltype(member)>>::value)
      for_each_param(member, f);
    else
      f(std::string_view(boost::hana::to<const char*>(boost::hana::first(accessor))), member);
  });
}

// Sets one field from its flag name (dashes or underscores) and text; UsageError if unknown.
template <class Config>
void set_flag(Config& config, std::string_view name, std::string_view text) {
  bool found = false;
  for_each_param(config, [&](std::string_view field, auto& param) {
    using T = typename std::remove_cvref_t<decltype(param)>::value_type;
    if (detail::flag_name(field) == detail::flag_name(name)) {
      T value = detail::parse_value<T>(detail::flag_name(field), text);
      if (const auto problem = detail::value_problem(value, param.range); !problem.empty())
        fail<UsageError>("--", detail::flag_name(field), ": ", problem);
      param.value = std::move(value);
      found = true;
    }
  });
  if (!found) fail<UsageError>("unknown option --", name, " (see --help)");
}

// Parses `--name value`, `--name=value`, `--flag` / `--no-flag` / `--flag true|false` (bools) into a
// copy of defaults. Anything that is not a flag is a UsageError (subcommands take no positional
// arguments), and so is a number outside its field's Range or not finite.
template <class Config>
Config parse_flags(std::span<const std::string> args, Config config = {}) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (!arg.starts_with("--") || arg.size() == 2)
      fail<UsageError>("unexpected argument '", arg, "' (options are --name value; see --help)");
    arg.remove_prefix(2);
    const auto eq = arg.find('=');
    const std::string name(arg.substr(0, eq));
    bool is_bool = false, exists = false;
    for_each_param(config, [&](std::string_view field, auto& param) {
      using T = typename std::remove_cvref_t<decltype(param)>::value_type;
      const auto flag = detail::flag_name(field);
      if (flag == detail::flag_name(name) || "no-" + flag == detail::flag_name(name)) {
        exists = true;
        is_bool = std::is_same_v<T, bool>;
      }
    });
    if (!exists) fail<UsageError>("unknown option --", name, " (see --help)");
    if (eq != std::string_view::npos) {
      set_flag(config, name, arg.substr(eq + 1));
    } else if (is_bool) {
      const bool negated = name.starts_with("no-");
      // `--flag false` as --help's `<bool>` suggests; a following flag is not a value.
      if (!negated && i + 1 < args.size() && detail::is_bool_text(args[i + 1]))
        set_flag(config, name, args[++i]);
      else
        set_flag(config, negated ? name.substr(3) : name, negated ? "false" : "true");
    } else {
      if (i + 1 >= args.size()) fail<UsageError>("option --", name, " needs a value");
      set_flag(config, name, args[++i]);
    }
  }
  return config;
}

// One line per flag: name, type, help, default.
template <class Config>
std::string flags_help(const Config& defaults = {}) {
  std::vector<std::pair<std::string, std::string>> rows;
  std::size_t width = 0;
  for_each_param(defaults, [&](std::string_view field, const auto& param) {
    using T = typename std::remove_cvref_t<decltype(param)>::value_type;
    std::string left = "  --" + detail::flag_name(field) + " <" + detail::type_name<T>() + ">";
    std::string right = param.help;
    const auto shown = detail::show_value(param.value);
    right += " (default " + (shown.empty() ? std::string("none") : shown);
    if (param.range.lo > -std::numeric_limits<double>::infinity() ||
        param.range.hi < std::numeric_limits<double>::infinity())
      right += "; " + param.range.describe();
    right += ")";
    width = std::max(width, left.size());
    rows.emplace_back(std::move(left), std::move(right));
  });
  std::string out;
  for (auto& [left, right] : rows) out += left + std::string(width + 2 - left.size(), ' ') + right + '\n';
  return out;
}

// The run's config as a JSON object (field names as in the struct).
template <class Config>
nlohmann::json to_json(const Config& config) {
  nlohmann::json j = nlohmann::json::object();
  for_each_param(config, [&](std::string_view field, const auto& param) {
    j[std::string(field)] = detail::json_value(param.value);
  });
  return j;
}

// Reads back what to_json wrote (a resumed run reloads its config); unknown keys, values of the wrong
// type, non-finite numbers and numbers outside a field's Range are InvalidArgument naming the key.
template <class Config>
Config from_json(const nlohmann::json& j, Config config = {}) {
  for (const auto& [key, value] : j.items()) {
    bool found = false;
    for_each_param(config, [&](std::string_view field, auto& param) {
      using T = typename std::remove_cvref_t<decltype(param)>::value_type;
      if (field != key) return;
      found = true;
      T parsed{};
      try {
        if constexpr (std::is_same_v<T, std::filesystem::path>)
          parsed = value.template get<std::string>();
        else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
          parsed = detail::json_integer<T>(value, key);
        else
          parsed = value.template get<T>();
      } catch (const nlohmann::json::exception& e) {
        fail<InvalidArgument>("config: key '", key, "': expected ", detail::type_name<T>(), ", got ",
                              value.dump(), " (", e.what(), ")");
      }
      if (const auto problem = detail::value_problem(parsed, param.range); !problem.empty())
        fail<InvalidArgument>("config: key '", key, "': ", problem);
      param.value = std::move(parsed);
    });
    if (!found) fail<InvalidArgument>("config: unknown key '", key, "'");
  }
  return config;
}

}  // namespace p4lm
