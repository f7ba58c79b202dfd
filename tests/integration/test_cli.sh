#!/usr/bin/env bash
# The onebit command line: --version, help, <cmd> --help for every command that
# `onebit help` lists (a usage line and exit 0 when implemented; the one-line
# "not implemented yet" and a non-zero exit while pending), the onebit-* links,
# suggestions for unknown commands and flags, and init-config end to end.
set -u
bin=${ONEBIT_BIN:?set by ctest}
onebit="$bin/onebit"
src=${ONEBIT_SOURCE_DIR:?set by ctest}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# run NAME ARGS...: runs a command, leaving its exit status in $rc and its
# stdout+stderr in $out.
run() {
  out=$("$@" 2>&1)
  rc=$?
  checks=$((checks + 1))
}

expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, wanted $1; output: $out"; }
expect_out() { grep -qF -- "$1" <<<"$out" || fail "$2: output lacks '$1': $out"; }
expect_no_out() { ! grep -qF -- "$1" <<<"$out" || fail "$2: output has '$1': $out"; }

# ---- version and help ---------------------------------------------------------
want_version=$(sed -n 's/^project(onebit VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$want_version" ] || fail "no version in CMakeLists.txt"
for form in --version version; do
  run "$onebit" $form
  expect_rc 0 "onebit $form"
  [ "$(printf '%s\n' "$out" | head -1)" = "onebit $want_version" ] ||
    fail "onebit $form printed '$out', wanted 'onebit $want_version' first"
  printf '%s\n' "$out" | grep -q '^CUDA backend: ' || fail "onebit $form does not say whether CUDA is built"
done

run "$onebit"
expect_rc 2 "onebit without a command"
expect_out "usage: onebit <command>" "onebit without a command"

run "$onebit" help
expect_rc 0 "onebit help"
help_text=$out
# Command names: the first word of each line of the "commands:" block.
commands=$(awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}' <<<"$help_text" |
  grep -vx -e help -e --version)
[ "$(wc -w <<<"$commands")" -ge 10 ] || fail "onebit help lists too few commands: $commands"
for form in --help -h; do
  run "$onebit" $form
  expect_rc 0 "onebit $form"
  [ "$out" = "$help_text" ] || fail "onebit $form differs from onebit help"
done

# ---- <command> --help for every listed command ----------------------------------
implemented=0
pending=0
for cmd in $commands; do
  for form in "$cmd --help" "$cmd -h" "help $cmd"; do
    run "$onebit" $form
    if [ "$rc" -eq 0 ]; then
      first=$(head -n 1 <<<"$out")
      case "$first" in
        "usage: onebit $cmd "*) ;;
        *) fail "onebit $form: exit 0 but the first line is not a usage line: $first" ;;
      esac
      expect_out "-h, --help" "onebit $form"
    elif [ "$(wc -l <<<"$out")" -eq 1 ] && [[ "$out" =~ ^"onebit $cmd: not implemented yet (".*")"$ ]]; then
      # A pending command: it must fail for real use too, so no script mistakes it for working.
      run "$onebit" $cmd
      [ "$rc" -ne 0 ] || fail "pending command $cmd exits 0"
      [ "$form" = "$cmd --help" ] && pending=$((pending + 1))
      continue
    else
      fail "onebit $form: exit $rc, neither usage nor 'not implemented yet': $out"
    fi
    [ "$form" = "$cmd --help" ] && implemented=$((implemented + 1))
  done
done
echo "commands: $implemented implemented, $pending pending"
[ "$implemented" -ge 1 ] || fail "no implemented command answered --help"

# ---- onebit-* links ---------------------------------------------------------------
# Every link named in the help text exists, and each dispatches to its command.
links=$(grep -o 'onebit-[a-z-]*[a-z]' <<<"$help_text" | sort -u)
[ -n "$links" ] || fail "onebit help names no onebit-* links"
for link in $links; do
  [ -L "$bin/$link" ] || fail "$bin/$link is not a link (named in onebit help)"
done
for path in "$bin"/onebit-*; do
  link=$(basename "$path")
  cmd=${link#onebit-}
  grep -qx -- "$cmd" <<<"$commands" || fail "$link: no command '$cmd' in onebit help"
  run "$path" --help
  via_link_rc=$rc via_link_out=$out
  run "$onebit" "$cmd" --help
  [ "$via_link_rc" -eq "$rc" ] && [ "$via_link_out" = "$out" ] ||
    fail "$link --help differs from onebit $cmd --help: $via_link_out"
  grep -qF "onebit $cmd" <<<"$via_link_out" || fail "$link --help does not name 'onebit $cmd': $via_link_out"
done
# Dispatch goes by the invoked name, wherever the link lives.
ln -s "$onebit" "$tmp/onebit-init-config"
run "$tmp/onebit-init-config" "$tmp/via-link.json"
expect_rc 0 "onebit-init-config link"
[ -s "$tmp/via-link.json" ] || fail "onebit-init-config link did not write the file"
ln -s "$onebit" "$tmp/onebit-nonsense"
run "$tmp/onebit-nonsense" --help
expect_rc 2 "onebit-nonsense link"
expect_out "unknown command name 'onebit-nonsense'" "onebit-nonsense link"

# ---- unknown commands and flags -----------------------------------------------------
for pair in trian:train exprot:export genrate:generate init-confg:init-config chta:chat; do
  typo=${pair%%:*} want=${pair#*:}
  run "$onebit" "$typo"
  expect_rc 2 "onebit $typo"
  expect_out "unknown command '$typo'; did you mean '$want'?" "onebit $typo"
done
run "$onebit" help trian
expect_rc 2 "onebit help trian"
expect_out "did you mean 'train'?" "onebit help trian"
for far in qqqqqqqq xy completely-unrelated; do
  run "$onebit" "$far"
  expect_rc 2 "onebit $far"
  expect_out "unknown command '$far'" "onebit $far"
  expect_no_out "did you mean" "onebit $far"
done

run "$onebit" init-config --forse "$tmp/flag.json"
expect_rc 2 "init-config --forse"
expect_out "unknown flag '--forse'; did you mean '--force'?" "init-config --forse"
[ ! -e "$tmp/flag.json" ] || fail "init-config wrote a file despite a bad flag"
run "$onebit" init-config --completely-unknown "$tmp/flag.json"
expect_rc 2 "init-config --completely-unknown"
expect_no_out "did you mean" "init-config --completely-unknown"

# ---- init-config ----------------------------------------------------------------------
cfg="$tmp/dir/config.json"
mkdir -p "$tmp/dir"
run "$onebit" init-config "$cfg"
expect_rc 0 "init-config"
[ -s "$cfg" ] || fail "init-config wrote nothing"
py=${ONEBIT_PYTHON:-/usr/bin/python3}
if command -v "$py" >/dev/null; then
  # Strict JSON (no duplicate keys) with every field docs/CONFIG.md lists as having a default.
  run "$py" - "$cfg" "$src/docs/CONFIG.md" <<'EOF'
import json, re, sys
def no_dups(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), keys
    return dict(pairs)
cfg = json.load(open(sys.argv[1]), object_pairs_hook=no_dups)
doc = re.findall(r"^\| `(\w+)` \| [^|]+ \| `([^`]+)`", open(sys.argv[2]).read(), re.M)
want = {name for name, default in doc if default != "absent"}
assert set(cfg) == want, (sorted(set(cfg) ^ want))
EOF
  expect_rc 0 "init-config output against docs/CONFIG.md"
fi
[ "$(ls -A "$tmp/dir")" = "config.json" ] || fail "init-config left other files: $(ls -A "$tmp/dir")"

echo '{"hidden_size": 64}' >"$cfg"
run "$onebit" init-config "$cfg"
expect_rc 1 "init-config over an existing file"
expect_out "already exists" "init-config over an existing file"
expect_out "--force" "init-config over an existing file"
[ "$(cat "$cfg")" = '{"hidden_size": 64}' ] || fail "init-config changed an existing file without --force"

run "$onebit" init-config --force "$cfg"
expect_rc 0 "init-config --force"
"$onebit" init-config "$tmp/fresh.json" >/dev/null 2>&1
cmp -s "$cfg" "$tmp/fresh.json" || fail "init-config --force did not write the defaults"
[ "$(ls -A "$tmp/dir")" = "config.json" ] || fail "init-config --force left other files: $(ls -A "$tmp/dir")"

run "$onebit" init-config
expect_rc 2 "init-config without a path"
expect_out "missing argument" "init-config without a path"
run "$onebit" init-config "$tmp/a.json" "$tmp/b.json"
expect_rc 2 "init-config with two paths"
expect_out "unexpected argument" "init-config with two paths"
run "$onebit" init-config "$tmp/no/such/dir/config.json"
expect_rc 1 "init-config into a missing directory"
expect_out "$tmp/no/such/dir/config.json" "init-config into a missing directory"

echo "$checks commands run, $failures failures"
[ "$failures" -eq 0 ]
