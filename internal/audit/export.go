package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Format is an export format of the trail.
type Format string

// The export formats. JSONL and JSON can be verified and hold every value
// exactly; CSV is for spreadsheets (its violations column joins them with
// "; ", which cannot be split back reliably), and a cell a spreadsheet
// would run as a formula is written as text (see csvCell).
const (
	// JSONL is one event per line; a trimmed trail starts with a line
	// {"anchor":{"hash":...,"seq":...}}.
	JSONL Format = "jsonl"
	// JSON is one object {"anchor":{...},"events":[...]}, "anchor" only for
	// a trimmed trail.
	JSON Format = "json"
	// CSV is a header row and one row per event.
	CSV Format = "csv"
)

// Formats are the export formats.
var Formats = []Format{JSONL, JSON, CSV}

// Known reports whether f is one of Formats.
func (f Format) Known() bool { return slices.Contains(Formats, f) }

// ContentType is the media type of an export in f.
func (f Format) ContentType() string {
	switch f {
	case JSONL:
		return "application/x-ndjson"
	case CSV:
		return "text/csv; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

// csvHeader are the columns of a CSV export.
var csvHeader = []string{"seq", "time", "type", "actor", "principal", "role", "scope", "activation_id",
	"assignment_id", "request_id", "justification", "reason", "violations", "expires_at", "id", "prev_hash", "hash"}

// ExportWriter writes an export: the anchor (when there is one) and then
// events, as many calls to Write as needed, so an export of any length is
// never held whole in memory. Close finishes it.
type ExportWriter struct {
	w      *bufio.Writer
	format Format
	n      int
	err    error
}

// NewExportWriter starts an export in format to w. A zero or nil anchor is
// left out; CSV has no place for one.
func NewExportWriter(w io.Writer, format Format, anchor *Anchor) (*ExportWriter, error) {
	x := &ExportWriter{w: bufio.NewWriter(w), format: format}
	withAnchor := anchor != nil && !anchor.IsZero()
	switch format {
	case JSONL:
		if withAnchor {
			x.printf(`{"anchor":%s}`+"\n", anchorJSON(*anchor))
		}
	case JSON:
		if withAnchor {
			x.printf(`{"anchor":%s,"events":[`, anchorJSON(*anchor))
		} else {
			x.printf(`{"events":[`)
		}
	case CSV:
		x.writeCSV(csvHeader)
	default:
		return nil, fmt.Errorf("export format %q: use jsonl, json or csv", format)
	}
	return x, x.err
}

// anchorJSON is a in jq's sorted form, like the events.
func anchorJSON(a Anchor) string {
	return `{"hash":` + string(appendString(nil, a.Hash)) + `,"seq":` + strconv.FormatInt(a.Seq, 10) + `}`
}

func (x *ExportWriter) printf(format string, a ...any) {
	if x.err == nil {
		_, x.err = fmt.Fprintf(x.w, format, a...)
	}
}

// Write adds events.
func (x *ExportWriter) Write(events ...Event) error {
	for _, e := range events {
		if x.err != nil {
			return x.err
		}
		if x.format == CSV {
			x.writeCSV(csvRow(e))
			x.n++
			continue
		}
		var line []byte
		if line, x.err = appendEvent(nil, e, true); x.err != nil {
			return x.err
		}
		switch {
		case x.format == JSONL:
			line = append(line, '\n')
		case x.n == 0:
			line = append([]byte("\n"), line...)
		default:
			line = append([]byte(",\n"), line...)
		}
		_, x.err = x.w.Write(line)
		x.n++
	}
	return x.err
}

// Close ends the export and flushes it; it does not close the writer
// given to NewExportWriter.
func (x *ExportWriter) Close() error {
	switch x.format {
	case JSON:
		if x.n > 0 {
			x.printf("\n")
		}
		x.printf("]}\n")
	}
	if x.err == nil {
		x.err = x.w.Flush()
	}
	return x.err
}

// writeCSV writes one record as encoding/csv would (RFC 4180, "\n" line
// ends), each cell through csvCell.
func (x *ExportWriter) writeCSV(record []string) {
	var b strings.Builder
	for i, cell := range record {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(csvCell(cell))
	}
	b.WriteByte('\n')
	if x.err == nil {
		_, x.err = x.w.WriteString(b.String())
	}
}

// csvCell is a cell as CSV text. A cell a spreadsheet would read as a
// formula (it starts with =, +, -, @, a tab or a carriage return, or one
// of =+-@ after spaces, or their full-width forms) is neutralised as OWASP
// recommends for CSV injection: a single quote before it, and the cell
// quoted, so it is shown as text and never run. Other cells are quoted
// only when CSV needs it, as encoding/csv does.
func csvCell(cell string) string {
	if formulaLike(cell) {
		return `"'` + strings.ReplaceAll(cell, `"`, `""`) + `"`
	}
	first, _ := utf8.DecodeRuneInString(cell)
	if cell == "" || !strings.ContainsAny(cell, ",\"\r\n") && !unicode.IsSpace(first) && cell != `\.` {
		return cell
	}
	return `"` + strings.ReplaceAll(cell, `"`, `""`) + `"`
}

func formulaLike(cell string) bool {
	if cell == "" {
		return false
	}
	if cell[0] == '\t' || cell[0] == '\r' {
		return true
	}
	r, _ := utf8.DecodeRuneInString(strings.TrimLeftFunc(cell, unicode.IsSpace))
	return strings.ContainsRune("=+-@\uFF1D\uFF0B\uFF0D\uFF20", r)
}

func csvRow(e Event) []string {
	t, _ := formatTime(e.Time)
	var expires string
	if e.ExpiresAt != nil {
		expires, _ = formatTime(*e.ExpiresAt)
	}
	return []string{strconv.FormatInt(e.Seq, 10), t, string(e.Type), e.Actor, e.Principal, e.Role, e.Scope,
		e.ActivationID, e.AssignmentID, e.RequestID, e.Justification, e.Reason, strings.Join(e.Violations, "; "),
		expires, e.ID, e.PrevHash, e.Hash}
}

// Export is a trail read back from an export.
type Export struct {
	// Anchor is where the trail starts; nil when it starts at the genesis.
	Anchor *Anchor
	Events []Event
	// Lines are the line numbers (from 1) of the events in a JSONL export,
	// to point at a bad one; nil for JSON.
	Lines []int
	// offForm says, by index, which events' JSON is not the canonical form
	// of their own values (a member added as null or "", a time written
	// another way): the bytes are not what was hashed, so the shell recipe
	// fails them, and Verify does too.
	offForm map[int]string
}

// Verify verifies the export's chain from its anchor, as Verify does, and
// also fails the first event whose JSON differs from the canonical form of
// its values (Altered), so it agrees with the shell recipe on any file.
func (x Export) Verify() error {
	v, err := NewVerifier(x.Anchor)
	if err != nil {
		return err
	}
	for i, e := range x.Events {
		if why, ok := x.offForm[i]; ok {
			return &ChainError{Index: i, Seq: v.head.Seq + 1, Found: e.Seq, Problem: Altered,
				Detail: fmt.Sprintf("event %s (seq %d) is not written as it was hashed: %s", e.ID, e.Seq, why)}
		}
		if err := v.check(e, x.Events[i+1:]); err != nil {
			return err
		}
	}
	return nil
}

// ErrExport marks input that is not an export of the trail.
var ErrExport = errors.New("not an audit export")

// ReadExport reads a JSONL or JSON export (as ExportWriter writes them,
// also a bare JSON array of events, as `elevate audit -o json` prints).
// It is strict, because what it reads is evidence: a member no event has,
// a value of the wrong type, an anchor anywhere but first is refused
// rather than skipped.
func ReadExport(r io.Reader) (Export, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return Export{}, err
	}
	// One JSON value holding everything is a JSON export; anything else
	// is read as lines.
	dec := json.NewDecoder(bytes.NewReader(raw))
	var whole json.RawMessage
	if dec.Decode(&whole) == nil {
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			switch {
			case bytes.HasPrefix(whole, []byte("[")):
				var events []json.RawMessage
				if err := strict(whole, &events); err != nil {
					return Export{}, fmt.Errorf("%w: a JSON array, but: %w", ErrExport, err)
				}
				return readEvents(nil, events)
			case hasMember(whole, "events"):
				var doc struct {
					Anchor *Anchor           `json:"anchor"`
					Events []json.RawMessage `json:"events"`
					// An API page saved as is also has this; it says
					// more events followed, which verification notices
					// no more than any cut-off end.
					NextAfterSeq int64 `json:"next_after_seq"`
				}
				if err := strict(whole, &doc); err != nil {
					return Export{}, fmt.Errorf("%w: a JSON export, but: %w", ErrExport, err)
				}
				if err := checkAnchor(doc.Anchor); err != nil {
					return Export{}, err
				}
				return readEvents(doc.Anchor, doc.Events)
			}
		}
	}
	return readLines(raw)
}

func readEvents(anchor *Anchor, raws []json.RawMessage) (Export, error) {
	x := Export{Anchor: anchor, Events: make([]Event, len(raws)), offForm: map[int]string{}}
	for i, raw := range raws {
		var err error
		if x.Events[i], err = x.decodeEvent(i, raw); err != nil {
			return Export{}, fmt.Errorf("%w: event %d of the list: %w", ErrExport, i+1, err)
		}
	}
	return x, nil
}

func readLines(raw []byte) (Export, error) {
	x := Export{Events: []Event{}, Lines: []int{}, offForm: map[int]string{}}
	for n, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if hasMember(line, "anchor") {
			var a struct {
				Anchor *Anchor `json:"anchor"`
			}
			if len(x.Events) > 0 || x.Anchor != nil {
				return Export{}, fmt.Errorf("%w: line %d: an anchor can only be the first line", ErrExport, n+1)
			}
			if err := strict(line, &a); err != nil || a.Anchor == nil {
				return Export{}, fmt.Errorf("%w: line %d is not {\"anchor\":{\"hash\":...,\"seq\":...}}: %v", ErrExport, n+1, err)
			}
			if err := checkAnchor(a.Anchor); err != nil {
				return Export{}, fmt.Errorf("line %d: %w", n+1, err)
			}
			x.Anchor = a.Anchor
			continue
		}
		e, err := x.decodeEvent(len(x.Events), line)
		if err != nil {
			return Export{}, fmt.Errorf("%w: line %d is not an event: %w", ErrExport, n+1, err)
		}
		x.Events = append(x.Events, e)
		x.Lines = append(x.Lines, n+1)
	}
	if len(x.Events) == 0 && x.Anchor == nil {
		return Export{}, fmt.Errorf("%w: it holds no events", ErrExport)
	}
	return x, nil
}

// decodeEvent decodes the event at index i strictly, and notes in offForm
// when its JSON is not the canonical form of its values.
func (x *Export) decodeEvent(i int, raw []byte) (Event, error) {
	var e Event
	if err := strict(raw, &e); err != nil {
		return Event{}, err
	}
	if !bytes.HasPrefix(raw, []byte("{")) {
		return Event{}, errors.New("not a JSON object")
	}
	canon, err := appendEvent(nil, e, true)
	if err != nil {
		return Event{}, err
	}
	if why := sameJSON(raw, canon); why != "" {
		x.offForm[i] = why
	}
	return e, nil
}

// sameJSON compares two JSON objects as jq would print them sorted:
// member by member, numbers by their text. It returns "" when they are
// the same, else the first difference.
func sameJSON(got, want []byte) string {
	decode := func(b []byte) map[string]any {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		_ = dec.Decode(&m)
		return m
	}
	g, w := decode(got), decode(want)
	keys := map[string]bool{}
	for k := range g {
		keys[k] = true
	}
	for k := range w {
		keys[k] = true
	}
	sorted := slices.Sorted(maps.Keys(keys))
	for _, k := range sorted {
		gv, inG := g[k]
		wv, inW := w[k]
		switch {
		case !inW:
			return fmt.Sprintf("member %q is not part of the event (as %s)", k, compact(gv))
		case !inG:
			return fmt.Sprintf("member %q is missing", k)
		case !reflect.DeepEqual(gv, wv):
			return fmt.Sprintf("member %q is %s, whose canonical form is %s", k, compact(gv), compact(wv))
		}
	}
	return ""
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func checkAnchor(a *Anchor) error {
	if a != nil && (a.Seq < 1 || !isHash(a.Hash)) {
		return fmt.Errorf("%w: the anchor needs a positive seq and a hash of 64 lower case hex digits, not %d and %q", ErrExport, a.Seq, a.Hash)
	}
	return nil
}

// strict decodes one JSON value into v, refusing unknown members and
// anything after the value.
func strict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more after the JSON value")
	}
	return nil
}

// hasMember reports whether raw is a JSON object with the member name.
func hasMember(raw []byte, name string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m[name]
	return ok
}
