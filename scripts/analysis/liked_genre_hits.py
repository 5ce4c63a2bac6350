#!/usr/bin/env python3
# Does a pitch model name what the user likes? For each test user's first held-out movie, a greedy
# pitch with the user's own CF embedding and with the next test user's (`p4lm pitch --embedding-user`);
# counts the genre words each pitch names and how many are among the liked genres of the user the
# pitch is for (docs/results.md). The `p4lm` program: $P4LM, default build/release/bin/p4lm.
# Usage: python3 scripts/analysis/liked_genre_hits.py R/cf_seed1/model.safetensors R/data
import json, os, re, subprocess, sys

model, data = sys.argv[1:3]
p4lm = os.environ.get('P4LM', 'build/release/bin/p4lm')
first = {}
for line in open(f'{data}/heldout/test.jsonl'):
    q = json.loads(line)
    first.setdefault(q['user_id'], q['movie_id'])
profiles = {p['user_id']: p for p in map(json.loads, open(f'{data}/profiles.jsonl'))}
genres = sorted({g['name'].lower() for p in profiles.values() for key in ('liked_genres', 'disliked_genres')
                 for g in p[key]})
users = sorted(first)


def pitch(user, movie, embedding_user):
    out = subprocess.run([p4lm, 'pitch', '--user', str(user), '--movie', str(movie), '--model', model, '--data',
                          data, '--temperature', '0', '--json', '--embedding-user', str(embedding_user)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[0])['pitch'].lower()


totals = {'own': [0, 0], 'other': [0, 0]}
for k, user in enumerate(users):
    liked = {g['name'].lower() for g in profiles[user]['liked_genres']}
    for kind, embedding_user in (('own', user), ('other', users[(k + 1) % len(users)])):
        words = set(re.findall(r"[a-z\-]+", pitch(user, first[user], embedding_user)))
        named = [g for g in genres if g in words]
        totals[kind][0] += sum(g in liked for g in named)
        totals[kind][1] += len(named)
for kind, (hits, named) in totals.items():
    print(f"{kind:5s} embedding: {hits} of {named} genre words named are the user's liked genres "
          f"({hits / max(named, 1):.3f}), {len(users)} users")
