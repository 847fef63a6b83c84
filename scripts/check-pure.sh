#!/usr/bin/env bash
# Protocol crates are sans-IO: no mio or socket2 in their dependency trees, and no clock reads
# outside their tests (code after a file's first `#[cfg(test)]`, and the test kit, are exempt).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for dir in protocols/*/; do
  crate="netlab-$(basename "$dir")"
  if cargo tree -q -e normal -p "$crate" | grep -qE '(^|[^a-z_-])(mio|socket2) v'; then
    echo "check-pure: $crate depends on mio or socket2"; fail=1
  fi
  while IFS= read -r -d '' f; do
    [[ "$(basename "$f")" == testkit.rs ]] && continue
    if awk '/#\[cfg\(test\)\]/{exit} /Instant::now|SystemTime::now|thread_rng|getrandom/{print FILENAME":"FNR": "$0; found=1} END{exit !found}' "$f"; then
      echo "check-pure: clock or randomness read in $crate (pass it in instead)"; fail=1
    fi
  done < <(find "$dir/src" -name '*.rs' -print0)
done
exit $fail
