// The data P4LM learns from, on the bundled MovieLens ml-latest-small: one movie's catalog entry
// (its atomic facts), one user's profile built from training ratings, and three teacher pitches for
// that user: a clean one, a hallucinated one and a bland one, with the facts they state and their
// defects. `p4lm data build` writes the same things for every user as JSONL (docs/data.md).

#include <iostream>

#include <p4lm/cf/movielens.hpp>
#include <p4lm/cf/split.hpp>
#include <p4lm/data/catalog.hpp>
#include <p4lm/data/profile.hpp>
#include <p4lm/data/teacher.hpp>

int main() {
  namespace data = p4lm::data;
  const auto ml =
      p4lm::cf::load_movielens(p4lm::cf::bundled_movielens(), {.overviews = p4lm::cf::bundled_overviews()});
  const auto split = p4lm::cf::holdout_split(ml.ratings, 0.2, /*seed=*/1);  // profiles see train only
  const auto catalog = data::build_catalog(ml);
  const auto profiles = data::build_profiles(split.train, catalog, ml.users);

  const auto& movie = catalog.by_movie_id(318);  // The Shawshank Redemption
  std::cout << "== catalog: " << movie.title_with_year() << "\n";
  for (const auto& fact : movie.facts) std::cout << "  " << fact.id << "  " << fact.value << '\n';

  const auto& user = profiles[static_cast<std::size_t>(ml.users.at(1))];
  std::cout << "\n== profile of user " << user.user_id << ":\n  " << user.text << '\n';

  const data::Teacher teacher(catalog);
  p4lm::Rng rng(/*seed=*/7);
  for (const auto defect : {std::optional<data::Defect>{}, std::optional{data::Defect::hallucinated},
                            std::optional{data::Defect::bland}}) {
    const auto plan = teacher.plan(user, movie.item, rng);
    if (defect && !teacher.can_apply(plan, *defect)) continue;
    const auto pitch = teacher.render(plan, defect);
    std::cout << "\n== pitch (" << (pitch.defects.empty() ? "clean" : data::to_string(pitch.defects[0]))
              << ")\n  " << pitch.text << "\n  facts:";
    for (const auto& id : pitch.facts) std::cout << ' ' << id;
    for (const auto& claim : pitch.claims())
      if (!claim.supported)
        std::cout << "\n  hallucinated: " << claim.value << " (borrowed " << claim.fact_id << ')';
    std::cout << "\n  link:";
    for (const auto& term : pitch.link_terms) std::cout << ' ' << term;
    std::cout << "\n  appeal:";
    for (const auto& a : pitch.appeal) std::cout << ' ' << a;
    std::cout << '\n';
  }
}
