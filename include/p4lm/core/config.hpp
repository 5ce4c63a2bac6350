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
// (BOOST_HANA_ADAPT_STRUCT rather than BOOST_HANA_DEFINE_STRUCT because the latter cannot carry the
// default member initializers that hold each field's default and help text.)
//
// Field `max_new_tokens` is the flag `--max-new-tokens`; bools are `--name`, `--no-name` or
// `--name=true|false`; vectors are comma-separated (`--ids 1,2,3`).

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"

namespace p4lm {

// A configuration value with its help text. Reads like the value it holds.
template <class T>
struct Param {
  using value_type = T;
  T value{};
  const char* help = "";

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

template <class T>
nlohmann::json json_value(const T& value) {
  if constexpr (std::is_same_v<T, std::filesystem::path>)
    return value.string();
  else
    return value;
}

}  // namespace detail

// Calls f(field_name, param) for every reflected field of config.
template <class Config, class F>
void for_each_param(Config& config, F&& f) {
  boost::hana::for_each(boost::hana::accessors<std::remove_const_t<Config>>(), [&](auto accessor) {
    f(std::string_view(boost::hana::to<const char*>(boost::hana::first(accessor))),
      boost::hana::second(accessor)(config));
  });
}

// Sets one field from its flag name (dashes or underscores) and text; UsageError if unknown.
template <class Config>
void set_flag(Config& config, std::string_view name, std::string_view text) {
  bool found = false;
  for_each_param(config, [&](std::string_view field, auto& param) {
    using T = typename std::remove_cvref_t<decltype(param)>::value_type;
    if (detail::flag_name(field) == detail::flag_name(name)) {
      param.value = detail::parse_value<T>(detail::flag_name(field), text);
      found = true;
    }
  });
  if (!found) fail<UsageError>("unknown option --", name, " (see --help)");
}

// Parses `--name value`, `--name=value`, `--flag` / `--no-flag` (bools) into a copy of defaults.
// Anything that is not a flag is a UsageError (subcommands take no positional arguments).
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
    right += " (default " + (shown.empty() ? std::string("none") : shown) + ")";
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

// Reads back what to_json wrote (a resumed run reloads its config); unknown keys are an error.
template <class Config>
Config from_json(const nlohmann::json& j, Config config = {}) {
  for (const auto& [key, value] : j.items()) {
    bool found = false;
    for_each_param(config, [&](std::string_view field, auto& param) {
      using T = typename std::remove_cvref_t<decltype(param)>::value_type;
      if (field != key) return;
      found = true;
      if constexpr (std::is_same_v<T, std::filesystem::path>)
        param.value = value.template get<std::string>();
      else
        param.value = value.template get<T>();
    });
    if (!found) fail<InvalidArgument>("config: unknown key '", key, "'");
  }
  return config;
}

}  // namespace p4lm
