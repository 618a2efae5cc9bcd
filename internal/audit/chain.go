package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Genesis is the PrevHash of the first event of a trail: 64 zeros.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// canonicalTime is the one layout of times in the canonical form: UTC,
// always nine fractional digits, so the text of a time never depends on
// its value's trailing zeros.
const canonicalTime = "2006-01-02T15:04:05.000000000Z"

// Anchor is where a trimmed trail starts: the seq and hash of the newest
// event that retention removed. The first retained event has seq
// Anchor.Seq+1 and prev_hash Anchor.Hash.
type Anchor struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// IsZero reports whether a is no anchor (nothing was ever trimmed).
func (a Anchor) IsZero() bool { return a.Seq == 0 }

// Canonical is what an event's hash covers: the event as a JSON object
// without "hash", encoded as the package doc specifies (the form `jq -cS`
// prints).
func Canonical(e Event) ([]byte, error) {
	return appendEvent(nil, e, false)
}

// HashOf computes the hash e should have: hex(SHA-256(e.PrevHash + "\n" +
// Canonical(e))).
func HashOf(e Event) (string, error) {
	c, err := Canonical(e)
	if err != nil {
		return "", err
	}
	return chainHash(e.PrevHash, c), nil
}

func chainHash(prev string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil))
}

// chain makes e the event after head: normalised, numbered, linked and
// hashed. Every sink appends through it, under its own lock or check.
func chain(head Anchor, e Event) (Event, error) {
	e = normalize(e)
	e.Seq, e.PrevHash = head.Seq+1, head.Hash
	if head.Seq == 0 {
		e.PrevHash = Genesis
	}
	h, err := HashOf(e)
	if err != nil {
		return Event{}, err
	}
	e.Hash = h
	return e, nil
}

// normalize gives e the values its JSON form reads back as, so the event a
// sink keeps, the event it returns and the event an export holds all hash
// alike: times in UTC without a monotonic reading, strings valid UTF-8
// (each invalid byte becomes U+FFFD, as JSON decoders and jq do), no empty
// violation list.
func normalize(e Event) Event {
	e.Time = e.Time.Round(0).UTC()
	if e.ExpiresAt != nil {
		t := e.ExpiresAt.Round(0).UTC()
		e.ExpiresAt = &t
	}
	for _, s := range []*string{&e.ID, &e.Actor, &e.Principal, &e.Role, &e.Scope, &e.ActivationID,
		&e.AssignmentID, &e.RequestID, &e.Justification, &e.Reason, (*string)(&e.Type)} {
		*s = validUTF8(*s)
	}
	if len(e.Violations) == 0 {
		e.Violations = nil
	} else {
		v := make([]string, len(e.Violations))
		for i, s := range e.Violations {
			v[i] = validUTF8(s)
		}
		e.Violations = v
	}
	return e
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+w])
		}
		i += w
	}
	return b.String()
}

// appendEvent appends the canonical form of e to b, with "hash" when
// withHash. The members are written in sorted order by hand rather than
// through a map, so the order is visible here and in the package doc.
func appendEvent(b []byte, e Event, withHash bool) ([]byte, error) {
	var err error
	b = append(b, '{')
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
	}
	str := func(k, v string, always bool) {
		if v != "" || always {
			key(k)
			b = appendString(b, v)
		}
	}
	tm := func(k string, t time.Time) {
		if err != nil {
			return
		}
		var s string
		if s, err = formatTime(t); err != nil {
			err = fmt.Errorf("%s: %w", k, err)
			return
		}
		key(k)
		b = appendString(b, s)
	}
	str("activation_id", e.ActivationID, false)
	str("actor", e.Actor, true)
	str("assignment_id", e.AssignmentID, false)
	if e.ExpiresAt != nil {
		tm("expires_at", *e.ExpiresAt)
	}
	if withHash {
		str("hash", e.Hash, true)
	}
	str("id", e.ID, true)
	str("justification", e.Justification, false)
	str("prev_hash", e.PrevHash, true)
	str("principal", e.Principal, false)
	str("reason", e.Reason, false)
	str("request_id", e.RequestID, false)
	str("role", e.Role, false)
	str("scope", e.Scope, false)
	key("seq")
	b = strconv.AppendInt(b, e.Seq, 10)
	tm("time", e.Time)
	str("type", string(e.Type), true)
	if len(e.Violations) > 0 {
		key("violations")
		b = append(b, '[')
		for i, v := range e.Violations {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return b, nil
}

// formatTime is t in the canonical layout. Years outside 0000-9999 have no
// RFC 3339 form, so they are refused rather than written as something no
// parser reads back.
func formatTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("year %d is outside RFC 3339's 0000-9999", y)
	}
	return t.Format(canonicalTime), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string exactly as jq prints it: `"` and
// `\` escaped with a backslash; \b \f \n \r \t for those controls; other
// controls (U+0000-U+001F) and DEL (U+007F) as \u00xx in lower case hex;
// everything else as its UTF-8 bytes, with each invalid byte as U+FFFD.
// Unlike Go's encoding/json, it escapes neither <, > and & nor U+2028 and
// U+2029, and does escape DEL.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, w := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && w == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, s[i:i+w]...)
			}
			i += w
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

// Problem is what is wrong where a chain breaks.
type Problem string

// The ways a chain breaks.
const (
	// Altered: the event's content does not match its hash.
	Altered Problem = "altered"
	// Removed: events are missing (a gap in seq).
	Removed Problem = "removed"
	// Reordered: events are out of order (seq goes backwards, or an event
	// appears before one that should precede it), or an event's prev_hash is
	// not the hash of the event before it.
	Reordered Problem = "reordered"
)

// ChainError says where a chain first breaks and how.
type ChainError struct {
	// Index is the position of the first bad event in the list verified
	// (0-based).
	Index int
	// Seq is the seq at which the chain breaks: the seq expected at Index
	// (for Removed, the first missing seq).
	Seq int64
	// Found is the seq of the event found at Index.
	Found   int64
	Problem Problem
	// Detail says what exactly is wrong.
	Detail string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s: %s", e.Seq, e.Problem, e.Detail)
}

// ErrNotChained marks a verification that could not start: an anchor that
// is not a seq and a hash.
var ErrNotChained = errors.New("not an audit chain")

// Verifier checks a chain one event at a time, oldest first, without
// holding it: for trails too long to keep in memory. It cannot look ahead,
// so a gap is always Removed; Verify, which sees the whole list, tells a
// gap whose events come later (Reordered) from one whose events are gone.
type Verifier struct {
	head  Anchor
	n     int
	first int64
	err   error
}

// NewVerifier starts a chain at anchor (nil or zero: at the genesis).
func NewVerifier(anchor *Anchor) (*Verifier, error) {
	v := &Verifier{head: Anchor{Hash: Genesis}}
	if anchor != nil && !anchor.IsZero() {
		if anchor.Seq < 0 || !isHash(anchor.Hash) {
			return nil, fmt.Errorf("%w: the anchor needs a positive seq and a hash of 64 lower case hex digits, not %d and %q", ErrNotChained, anchor.Seq, anchor.Hash)
		}
		v.head = *anchor
	}
	return v, nil
}

// Next checks e, the event after those given so far, and returns the
// first error again on every later call.
func (v *Verifier) Next(e Event) error {
	if v.err != nil {
		return v.err
	}
	v.err = v.check(e, nil)
	return v.err
}

// Count is how many events passed.
func (v *Verifier) Count() int { return v.n }

// First is the seq of the first event that passed (0 when none did).
func (v *Verifier) First() int64 { return v.first }

// Head is the seq and hash of the last event that passed, or the anchor.
func (v *Verifier) Head() Anchor { return v.head }

// check checks e at position v.n; later, when given, holds the events after
// it, to tell a reorder from a removal.
func (v *Verifier) check(e Event, later []Event) error {
	want := v.head.Seq + 1
	fail := func(at int64, p Problem, format string, a ...any) error {
		return &ChainError{Index: v.n, Seq: at, Found: e.Seq, Problem: p, Detail: fmt.Sprintf(format, a...)}
	}
	// Its own hash first: an edit of any field, seq and prev_hash included,
	// is an alteration, whatever else it also breaks.
	got, err := HashOf(e)
	if err != nil {
		return fail(want, Altered, "it cannot be encoded: %v", err)
	}
	if got != e.Hash {
		return fail(want, Altered, "event %s (seq %d) does not match its hash %.12s... (its content hashes to %.12s...)", e.ID, e.Seq, e.Hash, got)
	}
	switch {
	case e.Seq == v.head.Seq && v.n > 0:
		return fail(want, Reordered, "seq %d appears twice", e.Seq)
	case e.Seq < want:
		return fail(want, Reordered, "seq %d comes after seq %d: seq must increase by one", e.Seq, v.head.Seq)
	case e.Seq > want:
		missing := fmt.Sprintf("seq %d", want)
		if e.Seq > want+1 {
			missing = fmt.Sprintf("seqs %d..%d", want, e.Seq-1)
		}
		for _, l := range later {
			if l.Seq >= want && l.Seq < e.Seq {
				return fail(want, Reordered, "seq %d appears where seq %d belongs; seq %d comes later", e.Seq, want, l.Seq)
			}
		}
		switch {
		case v.n == 0 && v.head.Seq == 0:
			return fail(want, Removed, "%s missing before the first event, seq %d (a trimmed trail needs its anchor)", missing, e.Seq)
		case v.n == 0:
			return fail(want, Removed, "%s missing between the anchor, seq %d, and seq %d", missing, v.head.Seq, e.Seq)
		}
		return fail(want, Removed, "%s missing between seq %d and seq %d", missing, v.head.Seq, e.Seq)
	case e.PrevHash != v.head.Hash:
		what := fmt.Sprintf("the hash of seq %d", v.head.Seq)
		if v.n == 0 {
			what = "the anchor's hash"
			if v.head.Seq == 0 {
				what = "the genesis hash (64 zeros)"
			}
		}
		return fail(want, Reordered, "its prev_hash %.12s... is not %s, %.12s...: it does not follow the event before it (or that one was re-hashed)", e.PrevHash, what, v.head.Hash)
	}
	if v.n == 0 {
		v.first = e.Seq
	}
	v.head = Anchor{Seq: e.Seq, Hash: e.Hash}
	v.n++
	return nil
}

// Verify recomputes the chain of events, oldest first, starting at anchor
// (nil: at the genesis), and returns a *ChainError naming the first bad
// event, or nil. It proves the events are those hashed, complete and in
// order from the anchor on; it cannot tell that events after the last one
// were cut off, nor that the whole chain was rewritten and re-hashed: for
// that, compare the last hash with one you kept (see the package doc).
func Verify(events []Event, anchor *Anchor) error {
	v, err := NewVerifier(anchor)
	if err != nil {
		return err
	}
	for i, e := range events {
		if err := v.check(e, events[i+1:]); err != nil {
			return err
		}
	}
	return nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if !strings.ContainsRune(hexDigits, rune(s[i])) {
			return false
		}
	}
	return true
}
