package workflow

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/elevatepdp/elevate/internal/store"
)

// Limits bound what a caller may send, checked before anything is stored
// or audited: a refused request must not cost the store what it carries
// (denial events hold the justification).
type Limits struct {
	// Justification is the most characters of a justification or a reason
	// (activation, extension, approval, denial, cancellation, deactivation,
	// assignment).
	Justification int
	// TicketSystem and TicketNumber are the most characters of a ticket's
	// system and number.
	TicketSystem int
	TicketNumber int
	// Scope is the most characters of a scope.
	Scope int
	// ScheduleAhead is how far ahead of now a start (of an activation or
	// an assignment) may be.
	ScheduleAhead time.Duration
}

// DefaultLimits are the limits when none are configured.
func DefaultLimits() Limits {
	return Limits{Justification: 1000, TicketSystem: 64, TicketNumber: 128, Scope: 1024, ScheduleAhead: 365 * 24 * time.Hour}
}

// orDefault is l with each zero field at its default.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *int }{
		{&l.Justification, &d.Justification}, {&l.TicketSystem, &d.TicketSystem},
		{&l.TicketNumber, &d.TicketNumber}, {&l.Scope, &d.Scope},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if l.ScheduleAhead == 0 {
		l.ScheduleAhead = d.ScheduleAhead
	}
	return l
}

// The times Elevate accepts from outside: policies see times as int64
// Unix nanoseconds, which end in April 2262, and a time past that would
// wrap around to the 1700s (a start in 9999 made an assignment live at
// once). Times before 1970 have no use here.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// TimeField checks that t, the value of the field name, is a time Elevate
// can hold: from 1970-01-01 and before 2262-01-01 (UTC).
func TimeField(name string, t time.Time) error {
	if t.Before(minTime) || !t.Before(maxTime) {
		return invalid("%s: %s is outside the times Elevate accepts (from %s, before %s)",
			name, t.Format(time.RFC3339), minTime.Format(time.DateOnly), maxTime.Format(time.DateOnly))
	}
	return nil
}

// startField is TimeField of a start, which also may be at most
// l.ScheduleAhead after now.
func (l Limits) startField(name string, t *time.Time, now time.Time) error {
	if t == nil {
		return nil
	}
	if err := TimeField(name, *t); err != nil {
		return err
	}
	if t.Sub(now) > l.ScheduleAhead {
		return invalid("%s: %s is more than %s ahead, the most limits.schedule_ahead allows",
			name, t.Format(time.RFC3339), l.ScheduleAhead)
	}
	return nil
}

// blank are the runes that carry nothing readable: white space, control
// and format characters (zero-width space and joiners U+200B..U+200D, word
// joiner U+2060, byte order mark U+FEFF, bidi controls).
func blank(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// normalText is free text as Elevate keeps it, and as policies and the audit
// trail see it: without the blank runes around it, so text made only of
// them is empty.
func normalText(s string) string { return strings.TrimFunc(s, blank) }

// freeText is normalText(s), the value of field name, checked: valid UTF-8, at
// most max characters, and, when inline (a ticket's system or number), no
// control or format character inside; a justification may hold tabs and
// line breaks, but no other control character.
func freeText(name, s string, max int, inline bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("%s is not valid UTF-8", name)
	}
	// Counted before trimming too, so an over-long text of spaces does
	// not pass as empty without its size being refused.
	if n := utf8.RuneCountInString(s); n > max {
		return "", invalid("%s is %d characters long, more than the %d allowed", name, n, max)
	}
	s = normalText(s)
	for _, r := range s {
		bad := unicode.IsControl(r) && (inline || r != '\t' && r != '\n' && r != '\r')
		if bad || inline && unicode.Is(unicode.Cf, r) {
			return "", invalid("%s holds the control character %U", name, r)
		}
	}
	return s, nil
}

// reason is freeText of a justification or reason.
func (l Limits) reason(name, s string) (string, error) {
	return freeText(name, s, l.Justification, false)
}

// ticket is t with its system and number as freeText; nil when both are
// empty.
func (l Limits) ticket(t *store.Ticket) (*store.Ticket, error) {
	if t == nil {
		return nil, nil
	}
	system, err := freeText("ticket.system", t.System, l.TicketSystem, true)
	if err != nil {
		return nil, err
	}
	number, err := freeText("ticket.number", t.Number, l.TicketNumber, true)
	if err != nil {
		return nil, err
	}
	if system == "" && number == "" {
		return nil, nil
	}
	return &store.Ticket{System: system, Number: number}, nil
}

func (l Limits) scope(s string) error {
	if n := utf8.RuneCountInString(s); n > l.Scope {
		return invalid("scope is %d characters long, more than the %d allowed", n, l.Scope)
	}
	return nil
}

// activation checks r and normalises its free text in place, so the
// policy decides on what is stored.
func (l Limits) activation(r *ActivationRequest, now time.Time) error {
	var err error
	if r.Justification, err = l.reason("justification", r.Justification); err != nil {
		return err
	}
	if r.Ticket, err = l.ticket(r.Ticket); err != nil {
		return err
	}
	if err := l.scope(r.Scope); err != nil {
		return err
	}
	return l.startField("start", r.Start, now)
}

// assignment checks r and normalises its justification in place.
func (l Limits) assignment(r *AssignmentRequest, now time.Time) error {
	var err error
	if r.Justification, err = l.reason("justification", r.Justification); err != nil {
		return err
	}
	if err := l.scope(r.Scope); err != nil {
		return err
	}
	if err := l.startField("start", r.Start, now); err != nil {
		return err
	}
	if r.End != nil {
		return TimeField("end", *r.End)
	}
	return nil
}
