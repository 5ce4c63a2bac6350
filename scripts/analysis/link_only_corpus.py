#!/usr/bin/env python3
# The "link only" control of docs/results.md: a copy of a `p4lm data build` folder whose SFT pitches
# are cut to their link sentence (the user-dependent part), so that every pitch token depends on the
# user. Everything else (catalog, profiles, other datasets) is linked, not copied.
# Usage: python3 scripts/analysis/link_only_corpus.py R/data OUT/data
import json, os, sys

src, dst = sys.argv[1:3]
os.makedirs(os.path.join(dst, 'sft'), exist_ok=True)
for name in os.listdir(src):
    if name != 'sft' and not os.path.exists(os.path.join(dst, name)):
        os.symlink(os.path.abspath(os.path.join(src, name)), os.path.join(dst, name))
for split in ('train', 'val', 'test'):
    kept = 0
    with open(os.path.join(src, 'sft', split + '.jsonl')) as f, \
         open(os.path.join(dst, 'sft', split + '.jsonl'), 'w') as out:
        for line in f:
            q = json.loads(line)
            begin, end = q.get('link_span') or (0, 0)
            if end > begin:
                q['pitch'] = q['pitch'][begin:end]
                q['link_span'] = [0, end - begin]
                kept += 1
                out.write(json.dumps(q) + '\n')  # pitches without a link sentence are dropped
    print(split, kept, 'pitches with a link sentence')
