# End-to-end: `p4lm run --preset tiny` runs every pipeline stage on the bundled data, then a second run
# in the same folder reuses every artifact. Checks the files, their line counts and JSON fields.
# With the sentence encoder present (-DENCODER=<folder>), stages [6]-[8] too: reward heads, PPO and
# Table 1 (rows Base, SFT, P4LM), reused by the second run and giving the same table; then the examples
# table1 and reward_hacking (-DEXAMPLES=<folder of example_*>) on that run as their main run, with one
# RL iteration per variant: they add P4LM-S, SFT-Text and RL on appeal alone.
# -DP4LM=<p4lm binary> -DOUT=<scratch folder> -DENCODER=<all-minilm-l6-v2 folder of the model cache>
# The run lives in OUT/main, where the examples find it as their main run (a pitch model records its
# CF file's absolute path, so the run folder cannot move).
set(ROOT "${OUT}")
set(OUT "${ROOT}/main")
file(REMOVE_RECURSE "${ROOT}")

function(run_tiny log_var)
  execute_process(COMMAND "${P4LM}" run --preset tiny --out "${OUT}" --progress=false
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "p4lm run --preset tiny: exit ${rc}\n${out}${err}")
  endif()
  set(${log_var} "${out}" PARENT_SCOPE)
endfunction()

function(expect_match text regex)
  if(NOT text MATCHES "${regex}")
    message(FATAL_ERROR "expected '${regex}' in:\n${text}")
  endif()
endfunction()

function(expect_lines file count)
  if(NOT EXISTS "${OUT}/${file}")
    message(FATAL_ERROR "missing ${OUT}/${file}")
  endif()
  file(READ "${OUT}/${file}" text)  # count newlines: file(STRINGS) splits lines at ';' too
  string(REGEX MATCHALL "\n" newlines "${text}")
  list(LENGTH newlines n)
  if(NOT n EQUAL count)
    message(FATAL_ERROR "${file}: ${n} lines, expected ${count}")
  endif()
endfunction()

function(expect_json file expected)  # remaining arguments: the path of keys
  file(READ "${OUT}/${file}" json)
  string(JSON value GET "${json}" ${ARGN})
  if(NOT value STREQUAL "${expected}")
    message(FATAL_ERROR "${file} ${ARGN}: '${value}', expected '${expected}'")
  endif()
endfunction()

function(expect_number file)  # the value at the key path is a finite number
  file(READ "${OUT}/${file}" json)
  string(JSON type TYPE "${json}" ${ARGN})
  string(JSON value GET "${json}" ${ARGN})
  if(NOT type STREQUAL "NUMBER" OR NOT value MATCHES "^[0-9]+(\\.[0-9]+)?(e[-+]?[0-9]+)?$")
    message(FATAL_ERROR "${file} ${ARGN}: '${value}' (${type}), expected a number")
  endif()
endfunction()

run_tiny(first)
foreach(stage "\\[1\\] data inventory" "\\[2\\] collaborative filtering" "\\[3\\] catalog, profiles"
              "\\[4\\] SFT warm start" "\\[5\\] pitches for test users" "artifacts in ")
  expect_match("${first}" "${stage}")
endforeach()
expect_match("${first}" "test: .*rmse=[0-9.]+")
if(EXISTS "${ENCODER}/model.safetensors")
  set(with_rewards ON)
else()
  set(with_rewards OFF)
endif()
expect_match("${first}" "6 steps; held-out loss per pitch token: test [0-9.]+, with shuffled user embeddings [0-9.]+")

foreach(file config.json inventory.json summary.json cf/cf.safetensors cf/config.json data/stats.json
             data/catalog.jsonl data/profiles.jsonl data/heldout/test.jsonl sft/model.safetensors
             sft/result.json sft/curves.svg)
  if(NOT EXISTS "${OUT}/${file}")
    message(FATAL_ERROR "missing ${OUT}/${file}")
  endif()
endforeach()
expect_json(config.json tiny preset)
expect_json(inventory.json 100836 movielens ratings)
expect_lines(cf/metrics.jsonl 2)  # one record per ALS epoch
expect_json(cf/config.json 16 dim)
expect_json(data/config.json cf genre_taste)
file(READ "${OUT}/data/stats.json" stats)
string(JSON train_pitches GET "${stats}" splits train sft)
expect_lines(data/sft/train.jsonl ${train_pitches})
expect_json(summary.json 6 sft steps)
expect_json(summary.json 2 pitches)
expect_number(summary.json cf test rmse)
expect_number(sft/result.json test_loss)
expect_number(sft/result.json test_loss_shuffled_users)
expect_lines(pitches.jsonl 2)
file(READ "${OUT}/pitches.jsonl" pitches_first)
# Every row has a movie, a non-empty pitch and a user (matched, not split: profiles hold ';').
foreach(field "{\"movie_id\":[0-9]+," "\"pitch\":\"[^\"]" "\"user_id\":[0-9]+}\n")
  string(REGEX MATCHALL "${field}" found "${pitches_first}")
  list(LENGTH found n)
  if(NOT n EQUAL 2)
    message(FATAL_ERROR "pitches.jsonl: ${n} rows match '${field}', expected 2:\n${pitches_first}")
  endif()
endforeach()

if(with_rewards)
  foreach(stage "\\[6\\] reward models" "\\[7\\] RL: PPO" "\\[8\\] Table 1: 4 held-out users"
                "\\| Base \\| own \\|" "\\| Base \\| shuffled \\|" "\\| SFT \\| own \\|"
                "\\| P4LM \\| shuffled \\|" "- Base: ")
    expect_match("${first}" "${stage}")
  endforeach()
  foreach(reward precision appeal personalization preference_relevance)
    if(NOT EXISTS "${OUT}/rewards/${reward}.safetensors")
      message(FATAL_ERROR "missing ${OUT}/rewards/${reward}.safetensors")
    endif()
  endforeach()
  expect_json(summary.json 2 rl iterations)
  expect_number(summary.json rewards appeal pair_accuracy)
  expect_number(summary.json table1 SFT gold/precision)
  expect_number(summary.json table1 Base rewards/appeal)
  expect_number(summary.json table1 "Base (shuffled users)" gold/precision)
  expect_number(summary.json table1 "P4LM (shuffled users)" rewards/appeal)
  expect_lines(rl/metrics.jsonl 3)  # the evaluation before training, then one row per iteration
expect_json(rl/normalization.json 16 samples)  # standardised rewards: 4 x the RL batch of warm-start samples
foreach(component precision appeal personalization preference_relevance)
  expect_number(rl/normalization.json components ${component} std)
endforeach()
  expect_lines(table1.csv 7)  # header, Base, SFT and P4LM with own and shuffled users
  expect_lines(table1_pitches.jsonl 24)
  file(READ "${OUT}/table1.csv" table_first)
  foreach(row "\nBase,own,[-0-9.e]+," "\nBase,shuffled," "\nSFT,own," "\nP4LM,shuffled,")
    expect_match("${table_first}" "${row}")
  endforeach()
else()
  expect_match("${first}" "\\[6-8\\] reward models, RL and Table 1 skipped: all-MiniLM-L6-v2 is not in the model cache")
endif()

# The same command again: every stage reuses its artifact, and the seeded pitches are the same.
run_tiny(second)
expect_match("${second}" "reusing [^\n]*cf.safetensors")
expect_match("${second}" "reusing [^\n]*data")
expect_match("${second}" "reused: 6 steps")
file(READ "${OUT}/pitches.jsonl" pitches_second)
if(NOT pitches_first STREQUAL pitches_second)
  message(FATAL_ERROR "a second run wrote other pitches:\n${pitches_first}\nvs\n${pitches_second}")
endif()
expect_json(summary.json ON sft reused)
if(with_rewards)
  expect_match("${second}" "reusing [^\n]*rewards")
  expect_match("${second}" "reusing [^\n]*rl")
  file(READ "${OUT}/table1.csv" table_second)
  if(NOT table_first STREQUAL table_second)
    message(FATAL_ERROR "a second run wrote another Table 1:\n${table_first}\nvs\n${table_second}")
  endif()
endif()

# The examples, on this run as their main run (reused: only their variants train, one RL iteration each),
# in ROOT (OUT from here on).
function(run_example name)
  execute_process(COMMAND "${EXAMPLES}/example_${name}" tiny "${OUT}" --rl-iterations 1
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "example_${name} tiny: exit ${rc}\n${out}${err}")
  endif()
  set(example_log "${out}" PARENT_SCOPE)
endfunction()
if(NOT with_rewards)
  message(STATUS "examples table1 and reward_hacking skipped: all-MiniLM-L6-v2 is not in the model cache")
elseif(EXAMPLES STREQUAL "")
  message(STATUS "examples table1 and reward_hacking skipped: not configured (P4LM_BUILD_EXAMPLES=OFF)")
elseif(NOT EXISTS "${EXAMPLES}/example_table1" OR NOT EXISTS "${EXAMPLES}/example_reward_hacking")
  message(FATAL_ERROR "example_table1 / example_reward_hacking not built in '${EXAMPLES}'")
else()
  set(OUT "${ROOT}")
  run_example(table1)
  expect_match("${example_log}" "reusing [^\n]*/main/rl\n")  # the main run's RL, not trained again
  foreach(row Base SFT-Text SFT P4LM P4LM-S)
    expect_match("${example_log}" "\n\\| ${row} \\| own \\| [-0-9]")
    expect_match("${example_log}" "\n\\| ${row} \\| shuffled \\| [-0-9]")
  endforeach()
  expect_match("${example_log}" "\\[4\\] SFT-Text warm start")
  expect_match("${example_log}" "\\[7\\] RL skipped")
  expect_lines(table1.csv 11)  # header, five models with own and shuffled users
  expect_json(single-stage/rl/result.json 1 iterations)
  expect_number(sft-text/sft/result.json test_loss)
  run_example(reward_hacking)
  expect_match("${example_log}" "\n\\| RL on appeal \\| own \\| [-0-9]")
  expect_match("${example_log}" "RL on appeal, first user: ")
  expect_json(rl-appeal/result.json 1 iterations)
endif()
file(REMOVE_RECURSE "${ROOT}")
