// Package audit records every change of Elevate's state as one structured
// event: written through the process log (JSON, for collectors) and kept in
// a Sink that the API reads back (a Redis Stream shared by every replica, or
// a list in this process).
//
// # The chain
//
// The trail is a hash chain, so that editing, removing or reordering kept
// events shows. Every event has
//
//   - seq: 1, 2, 3... across the whole trail, without gaps;
//   - prev_hash: the hash of the event before it; for seq 1, Genesis, 64 "0"s;
//   - hash: hex(SHA-256(prev_hash + "\n" + canonical)), lower case, where
//     canonical is the canonical form below.
//
// The sink assigns all three when it appends, atomically with respect to
// every other writer: MemorySink under its mutex; RedisSink with a script
// that adds a batch of events (the appends waiting in one replica, chained
// one after another) only if the head of the chain (the key
// elevate:{audit}:head) is still the one the hashes were computed from, and
// otherwise retries from the new head. So several replicas form one chain.
//
// # Canonical form
//
// The canonical form of an event is the JSON object of its members without
// "hash", in UTF-8, with no whitespace outside strings, members sorted by
// name (byte order), which is exactly what `jq -cS 'del(.hash)'` prints for
// an exported event:
//
//	activation_id  string  left out when empty
//	actor          string  always
//	assignment_id  string  left out when empty
//	expires_at     time    left out when unset
//	id             string  always
//	justification  string  left out when empty
//	prev_hash      string  always
//	principal      string  left out when empty
//	reason         string  left out when empty
//	request_id     string  left out when empty
//	role           string  left out when empty
//	scope          string  left out when empty
//	seq            integer always, decimal, no sign, no leading zeros
//	time           time    always
//	type           string  always
//	violations     array of strings, in their order; left out when empty
//
// A time is a string in UTC with exactly nine fractional digits:
// 2026-03-01T09:30:00.000000000Z (Go layout 2006-01-02T15:04:05.000000000Z).
// A string is its characters as UTF-8, except: `"` and `\` are escaped with a
// backslash; U+0008, U+000C, U+000A, U+000D, U+0009 are \b, \f, \n, \r, \t;
// the other characters below U+0020, and U+007F, are \u00XX with lower case
// hex digits. Nothing else is escaped (not "/", "<", ">", "&", U+2028 or
// U+2029, which Go's encoding/json would escape). Invalid UTF-8 never reaches
// a hash: the sink replaces each invalid byte with U+FFFD before hashing, as
// JSON decoders and jq do when they read it.
//
// The JSON form of an event everywhere (the API, exports, Redis) is the
// canonical form with "hash" added in its sorted place (Event.MarshalJSON),
// so an exported line is byte for byte what `jq -cS .` prints for it.
//
// # Worked example
//
// The first event of a trail, seq 1, has this canonical form:
//
//	{"actor":"perparim@x","id":"evt_1","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","principal":"sophia@x","role":"user-administrator","scope":"/","seq":1,"time":"2026-03-01T09:30:00.000000000Z","type":"assignment.created"}
//
// and its hash is
//
//	$ printf '%s\n%s' 0000000000000000000000000000000000000000000000000000000000000000 "$canonical" | sha256sum
//	d010f355700104790cedd4bc8408d48d49c92417f4711c0bd3bbecd916f0cc0f  -
//
// which the next event carries as its prev_hash.
//
// # Verifying an export with a shell
//
// `elevate audit verify FILE` (Verify, Export.Verify) does this and names the
// first bad event and what is wrong with it (altered, removed, reordered).
// Without Elevate, this POSIX shell loop, needing only jq and sha256sum,
// checks a JSONL export (`elevate audit export -o export.jsonl`); it prints
// ok, or the seq of the first event whose hash does not follow:
//
//	f=export.jsonl
//	prev=$(jq -r 'select(has("anchor")) | .anchor.hash' "$f")
//	prev=${prev:-0000000000000000000000000000000000000000000000000000000000000000}
//	jq -c 'select(has("anchor") | not)' "$f" | while IFS= read -r ev; do
//	  canon=$(printf '%s' "$ev" | jq -cS 'del(.hash)')
//	  hash=$(printf '%s\n%s' "$prev" "$canon" | sha256sum | cut -c1-64)
//	  [ "$hash" = "$(printf '%s' "$ev" | jq -r .hash)" ] ||
//	    { echo "broken at seq $(printf '%s' "$ev" | jq .seq)"; exit 1; }
//	  prev=$hash
//	done && echo ok
//
// The loop needs no check of seq or prev_hash of its own: both are inside
// the hashed form, and each hash is computed from the previous event's, so
// a removed or moved event breaks the hash of the event after it. The files
// testdata/export.jsonl and testdata/trimmed.jsonl of this package pass it
// (checked with jq 1.6); they hold the characters where JSON encoders differ.
//
// # Retention and the anchor
//
// A sink with a Retention removes its oldest events. It then records an
// anchor (elevate:{audit}:anchor in Redis): the seq and hash of the newest
// event removed. The first retained event must have seq anchor.seq+1 and
// prev_hash anchor.hash, so the trail still verifies, from the anchor on,
// and removing its first events shows. Exports carry the anchor: the JSONL
// export's first line is {"anchor":{"hash":"...","seq":N}}, which the loop
// above starts from.
//
// # What the chain proves
//
// A chain that verifies has not been edited, shortened in the middle or
// reordered since it was hashed, by anyone who did not also recompute every
// later hash. It cannot show that the newest events were cut off, or that
// someone with write access to Redis rewrote and re-hashed the whole chain.
// To catch those, keep a recent (seq, hash) somewhere else (a ticket, a
// log archive: every "audit" line of the process log carries them) and
// check that the trail still holds that seq with that hash.
package audit
